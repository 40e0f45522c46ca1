"""Run `STEPS` training steps of a tiny LuNet recipe on one fixed P x K batch and save the per-step losses
and the final variables (used by tests/training/test_devices.py; each tf.distribute strategy in a process of
its own, since two in one process clash on collective instance keys).

    python replicated_steps.py '{"distribute": "mirrored", ...}' STEPS OUT.npz
"""

import json
import sys

import numpy as np
import tensorflow as tf

cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

from trinet.config.settings import TrainSettings  # noqa: E402
from trinet.training.trainer import Trainer  # noqa: E402

P, K = 4, 3
changes, steps, out = json.loads(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
rng = np.random.default_rng(0)
images = tf.constant(rng.uniform(0, 255, (P * K, 32, 16, 3)).astype(np.float32))
labels = tf.constant(np.repeat(np.arange(P), K).astype(np.int32))
settings = TrainSettings(**{**dict(model_name="lunet", head_name="bnneck", batch_p=P, batch_k=K,
                                   net_input_height=32, net_input_width=16, seed=1, id_loss_weight=1.0,
                                   center_loss_weight=0.001, optimizer="sgd", learning_rate=0.001),
                            **changes})
trainer = Trainer(settings, P + 1)
losses = [float(trainer.step(i)(images, labels)["loss"]) for i in range(steps)]
replicas = trainer.strategy.num_replicas_in_sync if trainer.strategy else 1
np.savez(out, losses=np.array(losses), replicas=replicas,
         **{f"var:{v.path}": v.numpy() for v in trainer.model.weights + [trainer.centers]})
