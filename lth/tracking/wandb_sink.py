"""The W&B sink: one W&B run per experiment, fed the same numbers as `metrics.jsonl`.

wandb is imported inside `open_wandb` only, so `import lth` stays fast and a missing or
broken wandb costs a warning, never an experiment.

What reaches W&B:

- Per-round metrics, one row per `log_round`, each key defined with
  `define_metric(key, step_metric="round")` so W&B plots them against `round`:
  `round`, `density`, `sparsity`, `remaining`, `test/acc`, `test/loss`, `test/best_acc`,
  `test/best_iter`, `val/acc`, `val/loss`, `early_stop/iter`, `train/loss`,
  `time/round_s`, `round_iters`, `supermask/test_acc` and `layer_density/<layer>` (see
  `ROUND_KEYS`). Any other
  key goes as-is; a dict value `k: {a: x}` goes as `k/a`; `None` values are skipped.
- Per-iteration curves, one row per `log_curve(round, it, values)`: each value as
  `curve/<name>` (e.g. `curve/test/acc`), plus `curve/round`, `curve/iter` (iteration within
  the round) and the step metric `curve/global_iter` = the lengths of all earlier rounds +
  `it`, i.e. training iterations since round 0 began. A round's length is the larger of its
  record's `iterations` and its largest curve `it`; replaying completed rounds through
  `log_round` after a resume therefore keeps the axis continuous.
- `step=` is never passed to `run.log`: W&B's `_step` counts log calls, so it only increases
  and no row is dropped; the step metrics above are the x axes.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from lth.errors import ConfigError
from lth.tracking.sinks import NullSink, Sink
from lth.tracking.wandb_records import iter_records

MODES = ("offline", "online", "disabled")

# Run-store record key -> W&B metric name (DESIGN.md, "Names agree across ... metrics").
ROUND_KEYS: dict[str, str] = {
    "round": "round",
    "density": "density",
    "sparsity": "sparsity",
    "remaining": "remaining",
    "test_acc": "test/acc",
    "test_loss": "test/loss",
    "best_test_acc": "test/best_acc",
    "best_iter": "test/best_iter",
    "val_acc": "val/acc",
    "val_loss": "val/loss",
    "early_stop_iter": "early_stop/iter",
    "train_loss": "train/loss",
    "wall_s": "time/round_s",
    "iterations": "round_iters",
    "layer_density": "layer_density",
    "supermask_test_acc": "supermask/test_acc",
    "train_macs": "cost/train_macs",
    "train_cost": "cost/train",
    "search_cost": "cost/search",
}

# Keep a run light: no system-metrics sampler, no machine/git scan, no code or
# requirements upload, nothing printed. Filtered against the installed wandb's fields.
_LIGHT_SETTINGS: dict[str, Any] = {
    "silent": True,
    "console": "off",
    "save_code": False,
    "disable_code": True,
    "disable_job_creation": True,
    "x_disable_stats": True,
    "x_disable_meta": True,
    "x_disable_machine_info": True,
    "x_save_requirements": False,
}

CURVE_STEP = "curve/global_iter"


def open_wandb(
    *,
    mode: str,
    project: str,
    group: str,
    name: str,
    run_id: str,
    config: dict[str, Any],
    directory: str | Path,
    tags: Sequence[str] = (),
    entity: str | None = None,
) -> Sink:
    """Start (or resume, same `run_id`) a W&B run writing under `<directory>/wandb/`.

    Returns a `NullSink` for mode "disabled" (wandb is not imported) and, after one warning
    line on stderr, whenever W&B cannot start. Raises `ConfigError` for an unknown mode.
    """
    if mode not in MODES:
        raise ConfigError(f"wandb.mode must be one of {', '.join(MODES)}, not {mode!r}")
    if mode == "disabled":
        return NullSink()
    try:
        run = _start_run(
            mode=mode,
            project=project,
            group=group,
            name=name,
            run_id=run_id,
            config=config,
            directory=Path(directory),
            tags=tags,
            entity=entity,
        )
    except Exception as exc:  # noqa: BLE001 - W&B must never stop an experiment
        _warn(
            f"W&B could not start ({_reason(exc)}); continuing with local logs only "
            "(set wandb.mode=offline or disabled)"
        )
        return NullSink()
    return WandbSink(run)


def _start_run(
    *,
    mode: str,
    project: str,
    group: str,
    name: str,
    run_id: str,
    config: dict[str, Any],
    directory: Path,
    tags: Sequence[str],
    entity: str | None,
) -> Any:
    # wandb silently falls back to a temp dir when `dir` is unusable; fail loudly instead.
    directory = directory.resolve()
    directory.mkdir(parents=True, exist_ok=True)
    if not os.access(directory, os.W_OK):
        raise PermissionError(f"{directory} is not writable")

    import wandb

    fields = getattr(wandb.Settings, "model_fields", {})
    settings = wandb.Settings(**{k: v for k, v in _LIGHT_SETTINGS.items() if k in fields})
    return wandb.init(
        mode=mode,
        project=project,
        entity=entity,
        group=group,
        name=name,
        id=run_id,
        resume="allow",
        config=dict(config),
        dir=str(directory),
        tags=list(tags),
        # A separate run object per experiment; nothing relies on the global `wandb.run`.
        reinit="create_new",
        settings=settings,
    )


def round_metrics(record: Mapping[str, Any]) -> dict[str, Any]:
    """The W&B row for one run-store round record (see `ROUND_KEYS`)."""
    row: dict[str, Any] = {}
    for key, value in record.items():
        if value is None:
            continue
        name = ROUND_KEYS.get(key, key)
        if isinstance(value, Mapping):
            for sub, v in value.items():
                if v is not None:
                    row[f"{name}/{sub}"] = _plain(v)
        else:
            row[name] = _plain(value)
    return row


def control_metrics(record: Mapping[str, Any]) -> dict[str, Any]:
    """The W&B row of a control's record: ``round`` plus ``control/<name>/<metric>``."""
    name = record["control"]
    rest = {k: v for k, v in record.items() if k not in ("round", "control")}
    row = {f"control/{name}/{key}": value for key, value in round_metrics(rest).items()}
    return {"round": record["round"], **row}


def instability_metrics(record: Mapping[str, Any]) -> dict[str, Any]:
    """The W&B row of an instability record: ``round`` plus ``instability/<metric>``
    (the barriers in percentage points, the spawn iteration, the copies' errors)."""
    row = {f"instability/{key}": _plain(record[key])
           for key in ("barrier_test", "barrier_train", "spawn_iter", "density") if key in record}
    for split in ("test", "train"):
        for c, err in enumerate(record.get(f"copy_{split}_err", [])):
            row[f"instability/copy_{c}/{split}_err"] = _plain(err)
    return {"round": record["round"], **row}


class WandbSink:
    """Logs rounds and curves to one W&B run; warns once and goes quiet if W&B fails."""

    def __init__(self, run: Any) -> None:
        self.run: Any | None = run
        self._defined: set[str] = set()
        self._round_len: dict[int, int] = {}
        self._safely(self._define_steps)

    def log_round(self, record: dict[str, Any]) -> None:
        self._note_length(record.get("round"), record.get("iterations"))
        self._safely(self._log_round, record)

    def log_curve(self, round: int, it: int, values: dict[str, float]) -> None:
        offset = sum(n for r, n in self._round_len.items() if r < round)
        self._note_length(round, it)
        self._safely(self._log_curve, round, it, offset + it, values)

    def close(self) -> None:
        """Finish the run; on return its `.wandb` file is complete on disk."""
        run, self.run = self.run, None
        if run is None:
            return
        try:
            run.finish()
            _wait_until_written(Path(run.settings.sync_file))
        except Exception as exc:  # noqa: BLE001
            _warn(f"W&B run did not finish cleanly ({_reason(exc)}); local logs are complete")

    def _define_steps(self) -> None:
        assert self.run is not None
        self.run.define_metric("round")
        self.run.define_metric(CURVE_STEP)
        self._defined.update(("round", CURVE_STEP))

    def _log_round(self, record: dict[str, Any]) -> None:
        self._log(round_metrics(record), "round")

    def _log_curve(self, round: int, it: int, step: int, values: dict[str, float]) -> None:
        row: dict[str, Any] = {"curve/round": round, "curve/iter": it, CURVE_STEP: step}
        for key, value in values.items():
            if value is not None:
                row[f"curve/{key}"] = _plain(value)
        self._log(row, CURVE_STEP)

    def _log(self, row: dict[str, Any], step_metric: str) -> None:
        assert self.run is not None
        for key in row.keys() - self._defined:
            self.run.define_metric(key, step_metric=step_metric)
            self._defined.add(key)
        self.run.log(row)

    def _note_length(self, round: Any, iterations: Any) -> None:
        if isinstance(round, int) and isinstance(iterations, int):
            self._round_len[round] = max(self._round_len.get(round, 0), iterations)

    def _safely(self, fn: Any, *args: Any) -> None:
        if self.run is None:
            return
        try:
            fn(*args)
        except Exception as exc:  # noqa: BLE001 - W&B must never stop an experiment
            _warn(f"W&B logging failed ({_reason(exc)}); continuing with local logs only")
            run, self.run = self.run, None
            try:
                run.finish(exit_code=1)
            except Exception:  # noqa: BLE001, S110 - already warned; the run is abandoned
                pass


def _wait_until_written(path: Path, timeout_s: float = 10.0) -> None:
    # `run.finish()` returns once wandb-core has handled the exit record, but the core
    # flushes and closes the file a few ms later, in its own process (wandb 0.31). Wait for
    # the exit record so that a reader right after `close()` sees the whole run.
    deadline = time.monotonic() + timeout_s
    delay = 0.002
    while path.exists() and time.monotonic() < deadline:
        try:
            if any(r.WhichOneof("record_type") == "exit" for r in iter_records(path)):
                return
        except (OSError, ValueError):
            pass  # mid-write; try again
        time.sleep(delay)
        delay = min(delay * 2, 0.1)


def _plain(value: Any) -> Any:
    # A 0-d tensor or numpy scalar would become a W&B histogram or object; log its number.
    item = getattr(value, "item", None)
    return item() if callable(item) else value


def _reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    reason = f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__
    return reason if len(reason) <= 200 else reason[:197] + "..."


def _warn(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr, flush=True)
