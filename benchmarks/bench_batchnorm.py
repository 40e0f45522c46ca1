"""ResNet-50 training step with Keras' batch norm and the fused one (`--batch_norm`), beside PyTorch.

Both trinet variants build the step through `trinet.training.trainer.Trainer` (the paper's triplet recipe) and
time it on one fixed P x K batch. When PyTorch and torchvision are importable by `--torch_python` (by
default this interpreter), the same step is timed there too (torchvision's ResNet-50, a linear head,
the batch-hard soft-margin triplet loss, Adam), eager, channels_last, and torch.compile'd, in a
subprocess. Prints images/s and the ratio of each to trinet's fused step:

    python benchmarks/bench_batchnorm.py                       # ResNet-50, 256x128, P=18 K=4
    python benchmarks/bench_batchnorm.py --torch_python /path/to/venv-with-torch/bin/python
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from common import fixed_batch, step_arguments, trainer_settings  # noqa: E402

TORCH_STEP = r"""
import json, sys, time
import torch, torchvision
args = json.loads(sys.argv[1])
torch.manual_seed(0)
h, w = args["net_input"]
batch = args["batch_p"] * args["batch_k"]
images = torch.rand(batch, 3, h, w) * 255
labels = torch.arange(args["batch_p"]).repeat_interleave(args["batch_k"])
results = {}
for variant in ("eager", "channels_last", "torch.compile"):
    net = torchvision.models.resnet50()
    net.fc = torch.nn.Linear(2048, 128)
    x = images
    if variant != "eager":
        net = net.to(memory_format=torch.channels_last)
        x = images.contiguous(memory_format=torch.channels_last)
    opt = torch.optim.Adam(net.parameters(), lr=3e-4)
    def step():
        emb = net(x)
        d = torch.cdist(emb, emb)
        same = labels[:, None] == labels[None, :]
        pos = (d * same).max(1).values
        neg = torch.where(same, torch.full_like(d, float("inf")), d).min(1).values
        loss = torch.nn.functional.softplus(pos - neg).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        return loss
    if variant == "torch.compile":
        step = torch.compile(step)
    for _ in range(args["warmup"]):
        step()
    start = time.perf_counter()
    for _ in range(args["steps"]):
        step().item()
    results[variant] = args["steps"] * batch / (time.perf_counter() - start)
print(json.dumps({"torch": torch.__version__, **results}))
"""


def trinet_rates(args) -> dict[str, float]:
    import numpy as np

    from trinet.training.trainer import Trainer

    batch = args.batch_p * args.batch_k
    images, labels = fixed_batch(args.batch_p, args.batch_k, args.net_input)
    steps = {}
    for kind in ("keras", "fused"):
        steps[kind] = Trainer(trainer_settings(args, batch_norm=kind), args.batch_p).step(0)
        for _ in range(args.warmup):
            steps[kind](images, labels)["loss"].numpy()
    rates: dict[str, list[float]] = {kind: [] for kind in steps}
    for _ in range(args.repeats):  # in turns, so that a busy machine slows both alike
        for kind, step in steps.items():
            start = time.perf_counter()
            for _ in range(args.steps):
                step(images, labels)["loss"].numpy()
            rates[kind].append(args.steps * batch / (time.perf_counter() - start))
    return {f"trinet, {kind} BN": float(np.median(values)) for kind, values in rates.items()}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    step_arguments(p, model_name="resnet50", batch_p=18, net_input=(256, 128), steps=3)
    p.add_argument("--torch_python", default=sys.executable,
                   help="a Python interpreter with torch and torchvision (skipped if it has none)")
    args = p.parse_args()

    rates = trinet_rates(args)
    torch_args = {"net_input": list(args.net_input), "batch_p": args.batch_p, "batch_k": args.batch_k,
                  "steps": args.steps * args.repeats, "warmup": args.warmup}
    torch_note = ""
    if args.model_name == "resnet50":
        done = subprocess.run([args.torch_python, "-c", TORCH_STEP, json.dumps(torch_args)],
                              capture_output=True, text=True)
        if done.returncode == 0:
            result = json.loads(done.stdout.strip().splitlines()[-1])
            torch_note = f", PyTorch {result.pop('torch')}"
            rates.update({f"PyTorch {name}": value for name, value in result.items()})
        else:
            why = done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "failed"
            print(f"(PyTorch not measured: {why})")
    import tensorflow as tf
    batch = args.batch_p * args.batch_k
    print(f"{args.model_name} training step, batch {args.batch_p}x{args.batch_k}={batch} at "
          f"{args.net_input[0]}x{args.net_input[1]}, {os.cpu_count()} CPUs, TensorFlow {tf.__version__}"
          f"{torch_note}")
    base = rates["trinet, fused BN"]
    print(f"{'system':<26} {'images/s':>9} {'fused BN / this':>16}")
    for name, value in rates.items():
        print(f"{name:<26} {value:9.2f} {base / value:16.2f}")


if __name__ == "__main__":
    main()
