"""lth's speed targets (issue #5) measured side by side in one run; a table and a JSON file.

    python -m scripts.benchmark                 # ~15-25 min on a 2-core CPU
    python -m scripts.benchmark --quick         # a smoke run, ~2-3 min
    python -m scripts.benchmark --threads 1 --device cpu --out results/benchmarks/x.json

1. framework overhead: lth's marginal time per iteration (LeNet-300-100, batch 60, 60k
   MNIST-shaped samples in memory; evaluation and a mid-round checkpoint every 500 it (lth's
   defaults), progress bar, JSONL curve sink, the round's files) against a bare hand-written
   PyTorch loop;
2. masks: a pruned round against the dense round (lth), and masking strategies by hand;
3. replicas: ``replicas=8`` against 8 sequential runs (the default mnist1d experiment);
4. start-up: ``--help``, composing the config, what ``import lth`` loads;
5. the default experiment's wall time and one round of the LeNet-300-100 preset;
6. scale (scripts/bench_scale.py): ResNet-20 against a bare loop, bf16 and compile, replicas of
   ResNet-20, DDP 2 ranks against 1, the LeNet-300-100 figure's wall time estimated.

Marginal = (t(n2) - t(n1)) / (n2 - n1): start-up cancels. Compared variants alternate and
each ratio is the median of per-repeat ratios (see scripts/bench_timing.py); wall and process
CPU time are both recorded (CPU time is the steadier one on a shared machine).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import tempfile
from pathlib import Path

import torch

from lth.files import write_text
from scripts import bench_cli, bench_scale, bench_training
from scripts.bench_timing import Marginal, compare, ratio

ROOT = Path(__file__).resolve().parents[1]

# eval_every: lth's default train.eval_every (experiments/schema.py), as is the checkpoint
# frequency used for target 1; the quick run evaluates and checkpoints every 100 it.
FULL = dict(n1=500, n2=2500, mask_n2=1500, eval_every=500, train_size=60_000, rep_n1=250,
            rep_n2=1250, lenet_rep=(100, 300), fidelity_iters=3000, fidelity_seeds=8,
            cli_repeats=3, lenet_cli=(500, 2500))
QUICK = dict(n1=100, n2=300, mask_n2=300, eval_every=100, train_size=6_000, rep_n1=50,
             rep_n2=150, lenet_rep=None, fidelity_iters=100, fidelity_seeds=2, cli_repeats=1,
             lenet_cli=(100, 500))
K = 8


def machine(device: torch.device, threads: int) -> dict[str, object]:
    """What the figures were measured on."""
    import lth

    cpu = platform.processor()
    try:
        cpu = next(ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text()
                   .splitlines() if ln.startswith("model name"))
    except (OSError, StopIteration):
        pass
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT,
                            capture_output=True, text=True).stdout.strip()
    return {
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "host": platform.node(), "platform": platform.platform(), "cpu": cpu,
        "cpu_count": os.cpu_count(), "torch_threads": threads, "device": str(device),
        "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
        "python": platform.python_version(), "torch": torch.__version__,
        "lth": lth.__version__, "git_commit": commit,
        "loadavg_start": list(os.getloadavg()),
    }


def _us(m: Marginal) -> str:
    return f"{m.wall_us / 1e3:.3f} ms/it (cpu {m.cpu_us / 1e3:.3f})"


def _ratio_row(rows: list, label: str, num: Marginal, den: Marginal, goal: str,
               scale: float = 1.0, names: tuple[str, str] = ("", "")) -> float:
    r_wall, r_cpu = scale * ratio(num, den, "wall"), scale * ratio(num, den, "cpu")
    measured = f"{names[0]}{_us(num)} vs {names[1]}{_us(den)}"
    rows.append((label, measured, f"{r_wall:.2f}x (cpu {r_cpu:.2f}x)", goal))
    return r_wall


def _default_every(key: str) -> int:
    """lth's default train.<key> in iterations (experiments/schema.py)."""
    from experiments.schema import TrainSchema
    from lth.train import parse_duration

    return parse_duration(getattr(TrainSchema(), key), 1, f"train.{key}")


def targets_1_2(s: dict, device: torch.device, repeats: int, rows: list) -> dict:
    data = bench_training.mnist_shaped(s["train_size"], 10_000, device)
    t1 = _target_1(s, data, device, repeats, rows)
    t2, kept, checks = _target_2(s, data, device, repeats, rows)
    return {"target1": {k: v.as_dict() for k, v in t1.items()},
            "target2": {k: v.as_dict() for k, v in t2.items()}, "density": kept,
            "mask_strategies_exact_zeros": checks}


def _target_1(s: dict, data, device: torch.device, repeats: int, rows: list) -> dict:
    """lth's round against bare loops (with and without its checkpoints, fused Adam, eval)."""
    ev = s["eval_every"]
    ckpt = _default_every("checkpoint_every") if s is FULL else ev

    def lth_round(checkpoint_every: int):  # noqa: ANN202
        make = bench_training.lenet_lottery(data, device, ev, checkpoint_every)
        return bench_training.lottery_round0(make, [0], device)

    bare = bench_training.bare
    t1 = compare({
        "lth": lth_round(ckpt),
        "lth_no_checkpoints": lth_round(0),
        "bare": bare(data, device, bench_training.lenet_adam(False)),
        "bare_fused": bare(data, device, bench_training.lenet_adam(True)),
        "bare_fused_eval": bare(data, device, bench_training.lenet_adam(True), eval_every=ev),
    }, s["n1"], s["n2"], repeats)
    _ratio_row(rows, "1 lth / bare loop (torch.optim.Adam defaults)", t1["lth"], t1["bare"],
               "<= 1.10x")
    _ratio_row(rows, "1 lth / bare loop, fused Adam (same kernels)", t1["lth"],
               t1["bare_fused"], "info")
    _ratio_row(rows, f"1 lth / bare loop, fused Adam + eval every {ev} it", t1["lth"],
               t1["bare_fused_eval"], "info: pure overhead")
    _ratio_row(rows, f"1 lth / lth without its checkpoint every {ckpt} it", t1["lth"],
               t1["lth_no_checkpoints"], "info")
    return t1


def _target_2(s: dict, data, device: torch.device, repeats: int, rows: list) -> tuple:
    """A pruned round against the dense one (lth), and masking strategies by hand."""
    ev, bare = s["eval_every"], bench_training.bare
    mask = bench_training.sparse_lenet_mask()
    kept = sum(int(m.sum()) for m in mask.values()) / sum(m.numel() for m in mask.values())
    checks: dict[str, bool] = {}
    strategies = {name: bare(data, device, bench_training.lenet_adam(True), strategy=name,
                             mask=mask, checks=checks)
                  for name in ("grad+param", "grad", "param", "parametrize")}
    t2 = compare({
        "dense": bench_training.lth_train(data, device, bench_training.lenet_adam(True), None, ev),
        "pruned": bench_training.lth_train(data, device, bench_training.lenet_adam(True), mask,
                                           ev),
        "dense_default_adam": bench_training.lth_train(
            data, device, bench_training.lenet_adam(False), None, ev),
        "pruned_default_adam": bench_training.lth_train(
            data, device, bench_training.lenet_adam(False), mask, ev),
        "bare_none": bare(data, device, bench_training.lenet_adam(True)),
        **strategies,
    }, s["n1"], s["mask_n2"], repeats)
    _ratio_row(rows, f"2 lth pruned ({100 * kept:.0f}% kept) / dense", t2["pruned"],
               t2["dense"], "<= 1.05x")
    _ratio_row(rows, "2 same, torch's default (unfused) Adam", t2["pruned_default_adam"],
               t2["dense_default_adam"], "info: sqrt(0)")
    for name in strategies:
        _ratio_row(rows, f"2 by hand: mask {name} / no mask (exact zeros: "
                   f"{'yes' if checks.get(name) else 'NO'})", t2[name], t2["bare_none"], "info")
    return t2, kept, checks


def target_3(s: dict, device: torch.device, repeats: int, rows: list) -> dict:
    from hydra import compose, initialize_config_dir

    from experiments.schema import register
    from experiments.setup import prepare

    register()  # the typed schemas the config files extend (the entry points do this too)
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose(config_name="config", overrides=[f"device={device.type}"])
    prep = prepare(cfg)
    make = bench_training.config_lottery(cfg, prep)
    seeds = list(range(K))
    t3 = compare({"single": bench_training.lottery_round0(make, [0], device),
                  "replicas": bench_training.lottery_round0(make, seeds, device)},
                 s["rep_n1"], s["rep_n2"], repeats)
    _ratio_row(rows, f"3 replicas={K} / {K} sequential runs, mnist1d MLP (throughput)",
               t3["single"], t3["replicas"], ">= 3x", scale=K, names=("1 run ", f"{K} replicas "))
    out: dict = {"mnist1d_mlp": {k: v.as_dict() for k, v in t3.items()}}
    if s["lenet_rep"]:
        data = bench_training.mnist_shaped(s["train_size"], 10_000, device)
        lenet = bench_training.lenet_lottery(data, device, s["lenet_rep"][1] - s["lenet_rep"][0])
        t3l = compare({"single": bench_training.lottery_round0(lenet, [0], device),
                       "replicas": bench_training.lottery_round0(lenet, seeds, device)},
                      *s["lenet_rep"], repeats)
        _ratio_row(rows, f"3 replicas={K} / {K} sequential runs, LeNet-300-100", t3l["single"],
                   t3l["replicas"], "info", scale=K, names=("1 run ", f"{K} replicas "))
        out["lenet_300_100"] = {k: v.as_dict() for k, v in t3l.items()}
    fid = bench_training.replica_fidelity(make, list(range(s["fidelity_seeds"])),
                                          s["fidelity_iters"], device)
    rows.append((f"3 replicas={len(fid['seeds'])}, rounds 0-1 of {fid['iterations']} it",
                 f"{fid['replicas_wall_s']} s vs sequential {fid['sequential_wall_s']} s; init "
                 f"identical: {fid['init_identical']}; round-1 mask agreement >= "
                 f"{100 * fid['min_round1_mask_agreement']:.2f}%; max |d test acc| "
                 f"{100 * fid['max_abs_test_acc_diff']:.2f} pt",
                 f"{fid['sequential_wall_s'] / fid['replicas_wall_s']:.2f}x end to end",
                 "info"))
    out["fidelity"] = fid
    return out


def targets_4_5(s: dict, threads: int, rows: list, lenet_full: int | None) -> dict:
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        env = bench_cli.cli_env(threads, tmp)
        t4 = bench_cli.startup(env, tmp, s["cli_repeats"])
        rows.append(("4 --help / composing the config (--cfg job)",
                     f"{t4['help_s']:.2f} s / {t4['compose_s']:.2f} s", "", "< 3 s"))
        loads = ", ".join(t4["import_lth_loads"]) or "none of wandb/matplotlib/torchvision"
        rows.append(("4 import lth (all subpackages)",
                     f"{t4['import_lth_s']:.2f} s, loads: {loads}", "", "no wandb, matplotlib"))
        t5 = bench_cli.default_experiment(env, tmp, s is QUICK)
        rows.append((f"5 python -m experiments.lottery ({t5['rounds']} rounds)",
                     f"{t5['wall_s']:.1f} s", "", "report"))
        t5b = bench_cli.lenet_round(env, tmp, *s["lenet_cli"], lenet_full)
        rows.append(("5 LeNet-300-100 preset, one 50K-it round (estimated)",
                     f"{t5b['estimated_round_s'] / 60:.1f} min ({t5b['marginal_ms']:.2f} "
                     f"ms/it incl. eval every 100 it on 15k)", "", "report"))
        if lenet_full:
            rows.append((f"5 LeNet-300-100 preset, {lenet_full} it (measured)",
                         f"{t5b['measured_round_s']:.1f} s", "", "report"))
    return {"target4": t4, "target5_default": t5, "target5_lenet": t5b}


def print_table(rows: list) -> None:
    widths = [max(len(str(r[i])) for r in rows) for i in range(4)]
    for r in rows:
        print("  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip())


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="small sizes: a smoke run")
    p.add_argument("--threads", type=int, default=torch.get_num_threads(),
                   help="torch intra-op threads, for every variant (default: %(default)s)")
    p.add_argument("--device", default="cpu", help="cpu or cuda (default: cpu)")
    p.add_argument("--repeats", type=int, default=None, help="repeats (default 3; quick 1)")
    p.add_argument("--lenet-full", type=int, default=None, metavar="ITERS",
                   help="also run the LeNet preset round for ITERS iterations (e.g. 50000)")
    p.add_argument("--skip", default="", help="comma list of sections to skip: 12,3,45,6")
    p.add_argument("--out", type=Path, default=None, help="JSON path (default: "
                   "results/benchmarks/benchmark-<device>-<threads>t-<date>.json)")
    args = p.parse_args(argv)
    s = QUICK if args.quick else FULL
    repeats = args.repeats or (1 if args.quick else 3)
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    report = {"machine": machine(device, args.threads), "quick": args.quick,
              "repeats": repeats, "sizes": s}
    rows: list = [("target", "measured", "ratio", "goal")]
    skip = set(args.skip.split(","))
    if "12" not in skip:
        report.update(targets_1_2(s, device, repeats, rows))
    if "3" not in skip:
        report["target3"] = target_3(s, device, repeats, rows)
    if "45" not in skip:
        report.update(targets_4_5(s, args.threads, rows, args.lenet_full))
    if "6" not in skip:
        scale = bench_scale.run(device, args.quick, repeats, args.threads, K)
        rows += bench_scale.rows_for(scale, K, _ratio_row)
        report["target6"] = bench_scale.strip(scale)
    report["machine"]["loadavg_end"] = list(os.getloadavg())
    report["table"] = rows
    print_table(rows)
    date = datetime.date.today().isoformat()
    out = args.out or (ROOT / "results" / "benchmarks" /
                       f"benchmark-{device.type}-{args.threads}t-{date}"
                       f"{'-quick' if args.quick else ''}.json")
    write_text(out, json.dumps(report, indent=1, default=str) + "\n")
    print(f"load average start {report['machine']['loadavg_start']} end "
          f"{report['machine']['loadavg_end']}; written {out}")
    return report


if __name__ == "__main__":
    main()
