"""Run `STEPS` training steps of a tiny LuNet recipe on one fixed P x K batch and save the per-step losses
and the final variables (used by tests/training/test_devices.py; each tf.distribute strategy in a process of
its own, since two in one process clash on collective instance keys).

    python replicated_steps.py '{"distribute": "mirrored", ...}' STEPS OUT.npz [--keep 0,10]
        [--step_from A.npz]

`--keep K,...`: also save the whole state after K steps (`state{K}:` + the paths of the model's weights, the
centres, the proxies and the optimizers' variables; K = 0 is the initial state) and the variables after
K + 1 steps (`state{K+1}:`). `--step_from A.npz`: after the run, for each state K kept in A.npz, load it and
take one step (the step of iteration K) from it, saving its loss (`from{K}:loss`) and the variables after it
(`from{K}:` + path): one step from the same state as the process that kept it.
"""

import argparse
import json

import numpy as np
import tensorflow as tf

cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

from trinet.config.settings import TrainSettings  # noqa: E402
from trinet.training.trainer import Trainer  # noqa: E402

parser = argparse.ArgumentParser()
parser.add_argument("changes", type=json.loads)
parser.add_argument("steps", type=int)
parser.add_argument("out")
parser.add_argument("--keep", type=lambda s: [int(k) for k in s.split(",")], default=[])
parser.add_argument("--step_from")
args = parser.parse_args()

P, K = 4, 3
rng = np.random.default_rng(0)
images = tf.constant(rng.uniform(0, 255, (P * K, 32, 16, 3)).astype(np.float32))
labels = tf.constant(np.repeat(np.arange(P), K).astype(np.int32))
settings = TrainSettings(**{**dict(model_name="lunet", head_name="bnneck", batch_p=P, batch_k=K,
                                   net_input_height=32, net_input_width=16, seed=1, id_loss_weight=1.0,
                                   center_loss_weight=0.001, optimizer="sgd", learning_rate=0.001),
                            **args.changes})
trainer = Trainer(settings, P + 1)
groups = trainer.groups()  # the centres and proxies (if any) are in "training", every optimizer's state too
variables = {v.path: v for v in groups["model"] + groups.get("training", [])}
state = {**variables, **{v.path: v for v in groups["optimizer"]}}
saved = {}


def keep(step):
    if step in args.keep:
        saved.update({f"state{step}:{path}": v.numpy() for path, v in state.items()})
    if step - 1 in args.keep:
        saved.update({f"state{step}:{path}": v.numpy() for path, v in variables.items()})


keep(0)
losses = []
for i in range(args.steps):
    losses.append(float(trainer.step(i)(images, labels)["loss"]))
    keep(i + 1)
final = {f"var:{path}": v.numpy() for path, v in variables.items()}
if args.step_from:
    kept = np.load(args.step_from)
    for step in sorted({int(name[5:name.index(":")]) for name in kept.files if name.startswith("state")}):
        if f"state{step}:{trainer.optimizer.iterations.path}" not in kept.files:
            continue  # variables only: the result of a step
        for path, v in state.items():
            v.assign(kept[f"state{step}:{path}"])
        saved[f"loss_from{step}"] = float(trainer.step(step)(images, labels)["loss"])
        saved.update({f"from{step}:{path}": v.numpy() for path, v in variables.items()})
replicas = trainer.strategy.num_replicas_in_sync if trainer.strategy else 1
np.savez(args.out, losses=np.array(losses), replicas=replicas, **final, **saved)
