"""Round 0 of the default experiment (300 iterations) with 1 and with 2 threads: equal weights?

    python results/benchmarks/first_hour/threads_change_numbers.py   # from the repository root
"""

import sys
from pathlib import Path

import torch
from hydra import compose, initialize_config_dir

sys.path.insert(0, ".")
from experiments.lottery import run  # noqa: E402
from experiments.schema import register  # noqa: E402

register()
outs = {}
for t in (1, 2):
    with initialize_config_dir(config_dir=str(Path("conf").resolve()), version_base="1.3"):
        cfg = compose(config_name="config", overrides=[
            "prune.rounds=0", "prune.controls=[]", "train.duration=300it", "progress=false",
            "wandb.mode=disabled", f"threads={t}", f"output_root=/tmp/lth_threads_{t}"])
    store = run(cfg)
    outs[t] = torch.load(store.final_path(0), weights_only=True)
same = all(torch.equal(outs[1][k], outs[2][k]) for k in outs[1])
diff = max(float((outs[1][k] - outs[2][k]).abs().max()) for k in outs[1])
print("bit-identical:", same, "max abs diff:", diff)
