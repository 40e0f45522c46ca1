"""Kept for old imports: everything here lives in `trinet.console`."""

from trinet.console import LOG_FORMAT, import_tensorflow_quietly, run_main, setup_console_logging

__all__ = ["LOG_FORMAT", "import_tensorflow_quietly", "run_main", "setup_console_logging"]
