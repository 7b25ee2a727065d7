import sys, torch
sys.path.insert(0, "/work/wt-firsthour")
from hydra import compose, initialize_config_dir
from experiments.schema import register
from experiments.lottery import run
register()
outs = {}
for t in (1, 2):
    with initialize_config_dir(config_dir="/work/wt-firsthour/conf", version_base="1.3"):
        cfg = compose(config_name="config", overrides=[
            "prune.rounds=0", "prune.controls=[]", "train.duration=300it", "progress=false",
            "wandb.mode=disabled", f"threads={t}", f"output_root=/tmp/fh/thr{t}"])
    store = run(cfg)
    outs[t] = torch.load(store.final_path(0), weights_only=True)
same = all(torch.equal(outs[1][k], outs[2][k]) for k in outs[1])
diff = max(float((outs[1][k] - outs[2][k]).abs().max()) for k in outs[1])
print("bit-identical:", same, "max abs diff:", diff)
