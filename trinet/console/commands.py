"""The console: the log format, console logging, a quiet TensorFlow import and errors turned into exits.

Shared by the commands in `trinet/cli/` and by the library (the run folder's `train.log` uses
`LOG_FORMAT`), so it imports nothing from `trinet.cli`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from typing import Callable, Sequence

from trinet.core.errors import TrinetError

#: The log line format of the console and of `train.log`.
LOG_FORMAT = "%(asctime)s [%(levelname)s] %(name)s: %(message)s"


def import_tensorflow_quietly() -> None:
    """Import TensorFlow and initialise its devices without its C++ start-up chatter.

    TensorFlow prints lines such as "Could not find cuda drivers" or "failed call to cuInit" on CPU-only
    machines before its own log level applies. Unless the user set TF_CPP_MIN_LOG_LEVEL (then nothing
    is hidden), the file descriptor of stderr is pointed at /dev/null while TensorFlow starts; Python
    exceptions are still raised and shown normally.
    """
    if "tensorflow" in sys.modules or "TF_CPP_MIN_LOG_LEVEL" in os.environ:
        return
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
            with contextlib.suppress(Exception):
                import tensorflow as tf
                tf.config.list_physical_devices()
    finally:
        os.dup2(saved, 2)
        os.close(saved)


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever `sys.stderr` is when a record is emitted (it may be replaced after set-up, e.g. by a
    caller capturing the output), never to a stream that has since been closed."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:
        pass


def setup_console_logging(quiet: bool = False) -> None:
    """INFO (or WARNING when quiet) to stderr for the `trinet` loggers."""
    logger = logging.getLogger("trinet")
    logger.setLevel(logging.DEBUG)
    if not any(isinstance(h, _StderrHandler) for h in logger.handlers):
        handler = _StderrHandler()
        handler.setFormatter(logging.Formatter(LOG_FORMAT, datefmt="%Y-%m-%d %H:%M:%S"))
        logger.addHandler(handler)
    for existing in logger.handlers:
        if isinstance(existing, _StderrHandler):
            existing.setLevel(logging.WARNING if quiet else logging.INFO)


def run_main(main: Callable[[Sequence[str] | None], int | None], argv: Sequence[str] | None = None) -> int:
    """Run `main(argv)`; a `TrinetError` becomes `error: <message>` on stderr and exit status 2."""
    try:
        return main(argv) or 0
    except TrinetError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
