"""The run store: where an experiment's files live, named in one place, written atomically.

Layout of a run directory ``<output_root>/<name>/<config hash>/``::

    config.yaml        the resolved config (all keys, including non-semantic ones)
    run.json           hash, derived seeds, versions; rounds.<k>: the versions and kernel facts
                       that made round k; failure: why a replica group left this seed behind
    metrics.jsonl      one JSON object per completed round (the completion record)
    init.pt            state dict before any training (iteration 0)
    rewind.pt          state dict at the rewind point of round 0
    round_<k>/mask.pt  the round's mask at the end of its training (name -> bool tensor)
    round_<k>/start_mask.pt  the mask it started from, only where a mask update changed it
    round_<k>/final.pt the round's trained state dict
    round_<k>/curve.json the round's evaluation points (iteration, losses, accuracies)
    round_<k>/checkpoint.pt  mid-round state (only while the round is incomplete)
    <file>.pt.sha256   sha256 of each .pt file (``sha256sum -c`` format), checked on load
    .lock              held (flock) by the process working on the run; holds its PID
    round_<k>/controls/<control>/{mask.pt,final.pt,curve.json}  a control trained beside it
    controls.jsonl     one JSON object per completed (round, control)
    round_<k>/instability/copy_<c>/{mask.pt,final.pt,curve.json}  instability copy c (0, 1)
    round_<k>/instability/interpolation.json  α -> test and train error between the copies
    instability_copies.jsonl  one JSON object per completed (round, copy)
    instability.jsonl  one JSON object per analysed round: the barriers (written last)
    round_<k>/<kind>/<name>/checkpoint.pt  a branch's mid-training state while incomplete
    round_<k>/transport/<variant>-<key>/...  a mask of another run moved into this run's
                       coordinates (lth.lottery.transport); records in transport.jsonl
    round_<k>/<kind>/<key>.perm.pt  the permutation a barrier or transport analysis found
    round_<k>/barrier/<key>.json  the error curves between another run's round k and this
                       run's, before and after alignment; records in barrier.jsonl (last)

A round is complete when its line is in metrics.jsonl; that line is written last.
The same holds for a control and its line in controls.jsonl.
Every file is written by ``lth.files.atomic_write`` (temporary name, fsync, rename). A ``.pt``
file's checksum is removed before the file is replaced and written after it, so a crash between
the two leaves a file without a checksum (still checked for structure), never a file with a
wrong one.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lth.errors import CheckpointError, ConfigError
from lth.files import TEMP_SUFFIX, atomic_write
from lth.store import checked, records
from lth.store.checked import checksum_path
from lth.store.hashing import run_hash

if TYPE_CHECKING:  # imported where tensors are read or written: scripts.runs never needs it
    import torch


class RunStore:
    """Paths and atomic reads/writes of one run directory."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    @classmethod
    def for_config(cls, output_root: str | Path, name: str, cfg: dict[str, Any]) -> RunStore:
        """The store of the experiment ``name`` with resolved config ``cfg``."""
        if not name or "/" in name or name.startswith("."):
            raise ConfigError(f"name={name!r} is not a valid experiment name: use letters, "
                              "digits, '_' or '-'")
        return cls(Path(output_root) / name / run_hash(cfg))

    # -- names ---------------------------------------------------------------------------
    @property
    def config_path(self) -> Path:
        return self.root / "config.yaml"

    @property
    def info_path(self) -> Path:
        return self.root / "run.json"

    @property
    def metrics_path(self) -> Path:
        return self.root / "metrics.jsonl"

    @property
    def init_path(self) -> Path:
        return self.root / "init.pt"

    @property
    def rewind_path(self) -> Path:
        return self.root / "rewind.pt"

    def round_dir(self, k: int, control: str | None = None, kind: str = "controls") -> Path:
        """``round_<k>/``, or ``round_<k>/<kind>/<control>/`` for a branch of round k (a
        control, or an instability copy with ``kind="instability"``)."""
        path = self.root / f"round_{k}"
        return path / kind / control if control else path

    def mask_path(self, k: int, control: str | None = None, kind: str = "controls") -> Path:
        return self.round_dir(k, control, kind) / "mask.pt"

    def start_mask_path(self, k: int, control: str | None = None,
                        kind: str = "controls") -> Path:
        """The mask a round (or branch) started from, stored only where it differs from the
        final one (a mask update changed it within the span)."""
        return self.round_dir(k, control, kind) / "start_mask.pt"

    def final_path(self, k: int, control: str | None = None, kind: str = "controls") -> Path:
        return self.round_dir(k, control, kind) / "final.pt"

    def curve_path(self, k: int, control: str | None = None, kind: str = "controls") -> Path:
        return self.round_dir(k, control, kind) / "curve.json"

    @property
    def early_bird_mask_path(self) -> Path:
        """Round 1's mask drawn at round 0's early-bird point (``analysis.early_bird_ticket``)."""
        return self.round_dir(0) / "early_bird_mask.pt"

    @property
    def controls_path(self) -> Path:
        return self.root / "controls.jsonl"

    def branch_log_path(self, kind: str) -> Path:
        """The JSONL file of a kind of branch: a branch is complete when its line is there."""
        if kind == "controls":
            return self.controls_path
        # instability's copies are branches, its records the analysis: kept apart
        return self.root / (f"{kind}_copies.jsonl" if kind == "instability" else f"{kind}.jsonl")

    @property
    def instability_path(self) -> Path:
        """One line per analysed round: the error barrier of its two instability copies."""
        return self.root / "instability.jsonl"

    def interpolation_path(self, k: int) -> Path:
        """Round k's curve of α -> error between its two instability copies."""
        return self.round_dir(k) / "instability" / "interpolation.json"

    @property
    def barrier_path(self) -> Path:
        """One line per (other run, round) whose barrier to this run is analysed."""
        return self.root / "barrier.jsonl"

    def barrier_curve_path(self, k: int, key: str) -> Path:
        """The error curves of barrier analysis ``key`` of round ``k``."""
        return self.round_dir(k) / "barrier" / f"{key}.json"

    def perm_path(self, k: int, kind: str, key: str) -> Path:
        """The permutation analysis ``key`` of kind ``kind`` (barrier, transport) found."""
        return self.round_dir(k) / kind / f"{key}.perm.pt"

    def checkpoint_path(self, k: int, control: str | None = None,
                        kind: str = "controls") -> Path:
        return self.round_dir(k, control, kind) / "checkpoint.pt"

    @property
    def lock_path(self) -> Path:
        return self.root / ".lock"

    # -- io --------------------------------------------------------------------------------
    def prepare(self) -> None:
        """Create the directory; a clear error if output_root cannot be written."""
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            # A unique name: two processes probing at once must not delete each other's.
            fd, probe = tempfile.mkstemp(dir=self.root, prefix=".probe.", suffix=TEMP_SUFFIX)
            os.close(fd)
            os.unlink(probe)
        except OSError as e:
            raise ConfigError(
                f"cannot write the run directory {self.root} ({e.strerror}): set output_root "
                "to a writable location with free space"
            ) from None

    def write_text(self, path: Path, text: str) -> None:
        atomic_write(path, text.encode())

    def read_info(self) -> dict[str, Any]:
        """run.json as a dict ({} if there is none); CheckpointError if it is not one."""
        return records.read_info(self.info_path)

    def read_config(self) -> dict[str, Any]:
        """config.yaml as plain data; CheckpointError naming the fix if missing or damaged."""
        return records.read_config(self.config_path)

    def check_name(self, config: Mapping[str, Any]) -> None:
        """CheckpointError unless ``config`` (the run's, as stored) hashes to the directory's
        name: an edited config.yaml no longer describes the files beside it."""
        got = run_hash(dict(config))
        if got != self.root.name:
            raise CheckpointError(
                f"{self.config_path} hashes to {got}, not to its directory's name "
                f"{self.root.name}: it was edited or made by another lth version; restore it "
                "as the run wrote it, or run the edited config as a new experiment")

    def note_round_versions(self, k: int, versions: Mapping[str, str]) -> None:
        """Record in run.json (under ``rounds.<k>``) the versions that made round ``k``."""
        info = self.read_info()
        info.setdefault("rounds", {})[str(k)] = dict(versions)
        failure = info.get("failure")
        if isinstance(failure, dict) and failure.get("round", k) <= k:
            del info["failure"]  # trained past it since
        self.write_text(self.info_path, json.dumps(info, indent=2))

    def note_failure(self, k: int, message: str) -> None:
        """Record in run.json (under ``failure``) why round ``k`` could not be trained (a
        replica group's diverged seed: the others went on); removed once round ``k`` is
        complete."""
        info = self.read_info()
        info["failure"] = {"round": k, "error": message}
        self.write_text(self.info_path, json.dumps(info, indent=2))

    def save(self, path: Path, obj: Any) -> None:
        """Save ``obj`` (tensors, numbers, strings, lists, dicts) atomically with a checksum."""
        checked.write(path, obj)

    def load(self, path: Path, fix: str) -> Any:
        """Load with ``weights_only=True`` after checking the checksum; CheckpointError (whose
        message ends with ``fix``) if the file is missing, corrupt or truncated."""
        return checked.read(path, fix)

    def save_tensors(self, path: Path, tensors: dict[str, torch.Tensor]) -> None:
        """Save a flat dict of tensors (moved to CPU) atomically, with a checksum."""
        self.save(path, {k: v.detach().cpu() for k, v in tensors.items()})

    def load_tensors(self, path: Path) -> dict[str, torch.Tensor]:
        """Load a dict of tensors with ``weights_only=True``; CheckpointError if unreadable."""
        import torch

        fix = ("delete it and the metrics lines of its round and later rounds to redo them"
               if path.parent.name.startswith("round_") else
               "delete the run directory to start the experiment again")
        data = self.load(path, fix)
        if not isinstance(data, dict) or not all(isinstance(v, torch.Tensor)
                                                 for v in data.values()):
            raise CheckpointError(f"{path} is not a tensor dict: {fix}")
        return data

    def remove(self, path: Path) -> None:
        """Delete a file and its checksum (missing ones are fine)."""
        path.unlink(missing_ok=True)
        checksum_path(path).unlink(missing_ok=True)

    def remove_temporaries(self) -> None:
        """Delete temporary files left by a killed process (call while holding the lock)."""
        for tmp in [*self.root.glob(f".*{TEMP_SUFFIX}"),
                    *self.root.glob(f"round_*/.*{TEMP_SUFFIX}"),
                    *self.root.glob(f"round_*/*/*/.*{TEMP_SUFFIX}"),
                    *self.root.glob(f"round_*/*/.*{TEMP_SUFFIX}")]:
            tmp.unlink(missing_ok=True)

    def pending_rounds(self, last_round: int) -> list[int]:
        """Rounds 0..``last_round`` not yet complete (no metrics line), in order."""
        return list(range(len(self.read_metrics()), last_round + 1))

    def completed_rounds(self, rounds: Iterable[int] | None = None,
                         first: int = 0) -> list[int]:
        """Completed rounds >= ``first``, in order; only ``rounds`` if given, each of which
        must be one (ConfigError naming the choices otherwise)."""
        completed = [r["round"] for r in self.read_metrics() if r["round"] >= first]
        if rounds is None:
            return completed
        wanted = set(rounds)
        missing = sorted(wanted - set(completed))
        if missing:
            which = f"completed rounds >= {first}" if first else "completed rounds"
            raise ConfigError(f"rounds {missing} are not {which} of {self.root}; "
                              f"choose from {completed}")
        return [k for k in completed if k in wanted]

    def read_metrics(self) -> list[dict[str, Any]]:
        """The completed rounds' records, in order: rounds 0..n-1 (CheckpointError naming the
        line otherwise)."""
        return records.check_round_order(self.metrics_path,
                                         records.read_jsonl(self.metrics_path))

    def append_metrics(self, record: dict[str, Any]) -> None:
        """Add one round's record; the rename makes the round complete in one step."""
        self._append_jsonl(self.metrics_path, record)

    def read_controls(self) -> list[dict[str, Any]]:
        """The completed controls' records (each with ``round`` and ``control``), in order."""
        return self.read_branches("controls")

    def read_branches(self, kind: str) -> list[dict[str, Any]]:
        """The completed branches of ``kind`` (``controls``, ``instability``), in order."""
        keys = {"controls": ("round", "control"), "instability": ("round", "copy")}.get(
            kind, ("round",))
        return records.read_jsonl(self.branch_log_path(kind), keys)

    def append_branch(self, kind: str, record: dict[str, Any]) -> None:
        """Add one branch's record; it is complete once the file is renamed into place."""
        self._append_jsonl(self.branch_log_path(kind), record)

    def read_instability(self) -> list[dict[str, Any]]:
        """The analysed rounds' instability records, in order."""
        return records.read_jsonl(self.instability_path)

    def append_instability(self, record: dict[str, Any]) -> None:
        """Add one round's instability record (written after its interpolation curve)."""
        self._append_jsonl(self.instability_path, record)

    def read_barriers(self) -> list[dict[str, Any]]:
        """The stored barrier analyses between other runs and this one, in order."""
        return records.read_jsonl(self.barrier_path)

    def append_barrier(self, record: dict[str, Any]) -> None:
        """Add one barrier analysis's record (written after its curves)."""
        self._append_jsonl(self.barrier_path, record)

    def _append_jsonl(self, path: Path, record: dict[str, Any]) -> None:
        lines = [json.dumps(r, sort_keys=True) for r in records.read_jsonl(path)]
        lines.append(json.dumps(record, sort_keys=True))
        self.write_text(path, "\n".join(lines) + "\n")
