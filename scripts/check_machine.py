"""Check this machine against committed portable-mode numbers.

    python -m scripts.check_machine [--expected results/portable/seed0.json] [--rounds N]
    python -m scripts.check_machine --run-dir <run directory>     # compare a stored run
    python -m scripts.check_machine --write <file> [--rounds N] [override ...]

Trains the expected file's experiment (its ``overrides``: by default the default experiment,
seed 0, ``reproducible=portable``) in a fresh process under a temporary output root, then
compares every round's and control's ``train_loss``, ``test_loss`` and ``test_acc`` with the
committed ones, bit for bit, one line each. ``--rounds N`` stops after round N (the first
rounds must match just as exactly: a quicker check). Exit code 0 when everything is identical,
1 when a number differs, 2 on bad input. ``--write`` trains and writes such a file instead,
with this machine's kernel facts (run.json) beside the numbers.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from lth.errors import LthError
from lth.store import RunStore

DEFAULT = Path("results/portable/seed0.json")
OVERRIDES = ["seed=0", "reproducible=portable"]
FIELDS = ("train_loss", "test_loss", "test_acc")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m scripts.check_machine", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--expected", type=Path, default=DEFAULT,
                        help=f"the committed numbers (default: {DEFAULT})")
    parser.add_argument("--rounds", type=int, default=None,
                        help="check rounds 0..N only (default: every committed round)")
    parser.add_argument("--run-dir", type=Path, default=None,
                        help="compare this stored run instead of training one")
    parser.add_argument("--write", type=Path, default=None,
                        help="train and write the expected numbers to this file")
    parser.add_argument("overrides", nargs="*", help="with --write: experiments.lottery "
                        f"overrides after {' '.join(OVERRIDES)}")
    return parser.parse_args(argv)


def numbers(run_dir: Path) -> dict[str, Any]:
    """A stored run's per-round and per-control numbers, with its kernel facts."""
    store = RunStore(run_dir)
    info = store.read_info()
    rows = [{"round": r["round"], "kind": "ticket", **{f: r[f] for f in FIELDS}}
            for r in store.read_metrics()]
    rows += [{"round": r["round"], "kind": r["control"], **{f: r[f] for f in FIELDS}}
             for r in store.read_controls()]
    rows.sort(key=lambda r: (r["round"], r["kind"] != "ticket", r["kind"]))
    kernels = (info.get("versions") or {}).get("kernels")
    return {"hash": run_dir.name, "rows": rows, "kernels": kernels,
            "commit": (info.get("versions") or {}).get("commit")}


def train(overrides: list[str], rounds: int | None) -> Path:
    """Train ``overrides`` in a fresh process (the kernels are pinned before torch loads)
    under a temporary output root; its run directory."""
    out = Path(tempfile.mkdtemp(prefix="lth-check-"))
    extra = [f"prune.rounds={rounds}"] if rounds is not None else []
    command = [sys.executable, "-m", "experiments.lottery", *overrides, *extra,
               f"output_root={out}", "progress=false", "wandb.mode=disabled"]
    print("training:", " ".join(command[1:]), flush=True)
    result = subprocess.run(command, capture_output=True, text=True, env=dict(os.environ))
    if result.returncode != 0:
        raise LthError(f"the training failed: {result.stderr.strip().splitlines()[-1:]}")
    lines = [ln for ln in result.stdout.splitlines() if ln.startswith("run directory: ")]
    return Path(lines[-1].removeprefix("run directory: "))


def compare(expected: dict[str, Any], got: dict[str, Any], rounds: int | None) -> int:
    """One line per expected row: same or differs; the number of rows that differ."""
    have = {(r["round"], r["kind"]): r for r in got["rows"]}
    bad = 0
    if got["hash"] != expected["hash"]:
        print(f"the config hashes to {got['hash']}, not {expected['hash']}: another lth "
              "version or config")
        bad += 1
    for row in expected["rows"]:
        if rounds is not None and row["round"] > rounds:
            continue
        mine = have.get((row["round"], row["kind"]))
        same = mine is not None and all(mine[f] == row[f] for f in FIELDS)
        acc = "missing" if mine is None else f"{100 * mine['test_acc']:.2f}%"
        print(f"round {row['round']:>2}  {row['kind']:<14} committed "
              f"{100 * row['test_acc']:.2f}%  here {acc:<8} "
              f"{'identical' if same else 'DIFFERS'}")
        bad += not same
    return bad


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        if args.write is not None:
            run = train([*OVERRIDES, *args.overrides], args.rounds)
            record = {"overrides": [*OVERRIDES, *args.overrides], **numbers(run),
                      "date": datetime.date.today().isoformat()}
            args.write.parent.mkdir(parents=True, exist_ok=True)
            args.write.write_text(json.dumps(record, indent=1) + "\n")
            print(f"wrote {args.write} ({len(record['rows'])} trainings)")
            return 0
        if not args.expected.is_file():
            raise LthError(f"{args.expected} is not a file: give --expected <the committed "
                           "numbers> (results/portable/seed0.json in the repository)")
        expected = json.loads(args.expected.read_text())
        run = args.run_dir or train(expected["overrides"], args.rounds)
        bad = compare(expected, numbers(run), args.rounds)
    except (LthError, OSError, ValueError, KeyError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print("every number is identical: this machine reproduces the committed ones" if not bad
          else f"{bad} differ: see docs/reproducibility.md for how far portability goes")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
