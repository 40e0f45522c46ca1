"""Run embed.py's main on two logical CPU devices (used by tests/training/test_devices.py): argv as
embed.py's."""

import sys

import tensorflow as tf

cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

from trinet.cli.embed import main  # noqa: E402

sys.exit(main(sys.argv[1:]))
