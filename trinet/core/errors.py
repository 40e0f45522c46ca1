"""The one exception type for problems with the user's input (files, flags, data)."""


class TrinetError(ValueError):
    """Bad input: a file, a flag or data that trinet cannot use.

    The message names the thing (file and line, flag and value) and says what is allowed. Command-line
    scripts print it without a traceback and exit with status 2; anything else is a bug and keeps its
    traceback.
    """


def listing(items, show: int = 5, sep: str = ", ") -> str:
    """The first `show` items joined for a message, with the count of the rest: `a, b, ... (3 more)`."""
    items = [str(item) for item in items]
    shown = sep.join(items[:show])
    return shown + (f"{sep}... ({len(items) - show} more)" if len(items) > show else "")


class WriteError(TrinetError, OSError):
    """A file could not be written (a full disk, a lost mount, no permission).

    A `TrinetError`, so scripts print its message without a traceback; also an `OSError` that keeps
    `errno` and `strerror` of the cause, so code that handles I/O failures still catches it.
    """

    def __init__(self, message: str, cause: OSError | None = None):
        super().__init__(message)
        if cause is not None:
            self.errno, self.strerror, self.filename = cause.errno, cause.strerror, cause.filename

    def __str__(self) -> str:  # OSError would print "[Errno 28] ..." instead of the message
        return str(self.args[0])
