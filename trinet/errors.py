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
