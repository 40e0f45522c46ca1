"""An exclusive lock on an experiment root, so that two runs never write one folder at once.

    with ExperimentLock(root, "train.py"):
        ...  # write checkpoints, logs, model.keras

The lock is the file `.trinet.lock` in the root, created atomically (`O_CREAT | O_EXCL`) and holding the
owner's pid, host, start time and command. A second run is refused with a message naming the first. A
lock left by a killed run is broken when it is safe to know that its owner is gone: on the same host,
when the pid no longer exists (or now belongs to a process started later). A lock of another host is
never broken automatically (its pid means nothing here); the message says how to remove it.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import logging
import os
import socket
import sys
import time
import uuid
from typing import Any

from trinet.core.errors import TrinetError, WriteError
from trinet.core.fileio import pid_exists

log = logging.getLogger(__name__)

#: The lock file in the experiment root.
LOCK_FILE = ".trinet.lock"

#: How long a lock file may be empty or incomplete (its owner is writing it) before it counts as damaged.
WRITE_GRACE_S = 5.0


def _process_start(pid: int) -> str | None:
    """When process `pid` started, in clock ticks since boot (Linux), or None if not known.

    With the pid it identifies a process: a pid reused by a later process has another start time.
    """
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
            return f.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def _describe(owner: dict[str, Any]) -> str:
    return (f"{owner.get('command') or 'a trinet run'} (pid {owner.get('pid')} on host {owner.get('host')}, "
            f"since {owner.get('since')})")


class ExperimentLock:
    """Hold `.trinet.lock` in `root` while the `with` block runs; released on exit, even on an error.

    Args:
        root: the experiment root; it must exist.
        command: what holds the lock, for the message a second run gets (default: the script's name).

    Raises:
        TrinetError: on entry, when another live run holds the lock (the message names its command,
            pid, host and start time, and the lock file), when the lock belongs to another host, or
            when the lock file is damaged.
        WriteError: the lock file cannot be created (no permission, a full disk).
    """

    def __init__(self, root: str, command: str | None = None):
        self.root = root
        self.path = os.path.join(root, LOCK_FILE)
        self.command = command or os.path.basename(sys.argv[0] or "python")
        self._content: bytes | None = None

    def __enter__(self) -> "ExperimentLock":
        self.acquire()
        return self

    def __exit__(self, kind, value, traceback) -> None:
        self.release()

    def acquire(self) -> None:
        """Take the lock (see the class); breaks the lock of a dead owner on this host, with a log line."""
        if self._content is not None:
            raise RuntimeError(f"{self.path} is already held by this ExperimentLock")
        host, pid = socket.gethostname(), os.getpid()
        since = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
        owner = {"pid": pid, "host": host, "since": since, "command": self.command,
                 "process_start": _process_start(pid), "token": uuid.uuid4().hex}
        content = (json.dumps(owner, indent=1) + "\n").encode("utf-8")
        for _ in range(10):
            try:
                fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                self._break_if_stale()
                continue
            except OSError as e:
                raise WriteError(f"Cannot create the lock file {self.path}: {e.strerror or e}", e) from None
            try:
                os.write(fd, content)
                os.fsync(fd)
            except OSError as e:
                os.close(fd)
                with contextlib.suppress(OSError):
                    os.remove(self.path)
                raise WriteError(f"Cannot write the lock file {self.path}: {e.strerror or e}", e) from None
            os.close(fd)
            self._content = content
            return
        raise TrinetError(f"Could not take the lock {self.path}: other runs keep taking it; try again.")

    def release(self) -> None:
        """Remove the lock file if it is still this lock's (a broken and retaken lock is left alone)."""
        content, self._content = self._content, None
        if content is None:
            return
        with contextlib.suppress(OSError):
            with open(self.path, "rb") as f:
                if f.read() != content:
                    return
            os.remove(self.path)

    def _read(self) -> tuple[bytes, dict[str, Any] | None] | None:
        """The raw lock file and its owner (None if damaged), or None if there is no lock file."""
        deadline = time.monotonic() + 1.0
        while True:
            try:
                with open(self.path, "rb") as f:
                    raw = f.read()
                age = time.time() - os.stat(self.path).st_mtime
            except FileNotFoundError:
                return None
            except OSError as e:
                raise TrinetError(f"Cannot read the lock file {self.path}: {e.strerror or e}") from None
            try:
                owner = json.loads(raw.decode("utf-8"))
                if isinstance(owner, dict) and isinstance(owner.get("pid"), int) and owner.get("host"):
                    return raw, owner
            except (UnicodeDecodeError, ValueError):
                pass
            if age > WRITE_GRACE_S or time.monotonic() > deadline:
                return raw, None
            time.sleep(0.05)  # its owner is still writing it

    def _break_if_stale(self) -> None:
        """Remove the lock file if its owner is dead; else raise the message naming the owner."""
        found = self._read()
        if found is None:
            return
        raw, owner = found
        if owner is None:
            raise TrinetError(f"The lock file {self.path} is damaged (not a trinet lock, or its writer was "
                              f"killed); no run can be named. If no run uses {self.root}, delete that file "
                              "and start again.")
        if owner["host"] != socket.gethostname():
            raise TrinetError(f"{self.root} is in use by {_describe(owner)}, according to {self.path}. That "
                              "host is not this machine, so trinet cannot tell whether the run still goes "
                              "on; two runs in one experiment root overwrite each other. If it has ended, "
                              "delete that file and start again.")
        pid = owner["pid"]
        if _alive(owner):
            raise TrinetError(f"{self.root} is in use by {_describe(owner)}; two runs in one experiment root "
                              f"overwrite each other. Wait for it to end or stop it (kill {pid}); the lock "
                              f"file is {self.path}.")
        with _serialised(self.root):
            again = self._read()
            if again is not None and again[0] == raw:  # nobody broke and retook it meanwhile
                with contextlib.suppress(FileNotFoundError):
                    os.remove(self.path)
                log.info("Removed the lock of %s, which ended without releasing it.", _describe(owner))


@contextlib.contextmanager
def _serialised(root: str):
    """Hold an advisory lock on the folder `root` (best effort), so that only one process at a time
    checks and removes a stale lock file: another one could otherwise remove the lock just retaken."""
    try:
        fd = os.open(root, os.O_RDONLY)
    except OSError:
        yield
        return
    try:
        import fcntl

        with contextlib.suppress(OSError):
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the advisory lock


def _alive(owner: dict[str, Any]) -> bool:
    """Whether the process of a lock's owner on this host still runs (a reused pid does not count)."""
    pid, recorded = owner["pid"], owner.get("process_start")
    return pid_exists(pid) and (recorded is None or _process_start(pid) in (None, recorded))


def live_owner(root: str) -> dict[str, Any] | None:
    """The owner of `root`'s lock while its run may still go on, or None: no lock, or one left by a dead
    process on this host. A lock of another host, or one that cannot be read, counts as held (its owner
    may run); its owner is then `{}` when unreadable."""
    if not os.path.lexists(os.path.join(root, LOCK_FILE)):
        return None
    owner = read_owner(root)
    if owner is None or not isinstance(owner.get("pid"), int):
        return {}
    if owner.get("host") != socket.gethostname():
        return owner
    return owner if _alive(owner) else None


def describe_owner(owner: dict[str, Any]) -> str:
    """An owner of `live_owner` in words: command, pid, host and start time."""
    return _describe(owner) if owner else "a run whose lock file cannot be read"


def read_owner(root: str) -> dict[str, Any] | None:
    """The owner recorded in the lock file of `root` (pid, host, since, command), or None if unlocked
    or unreadable."""
    try:
        with open(os.path.join(root, LOCK_FILE), "rb") as f:
            owner = json.loads(f.read().decode("utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    return owner if isinstance(owner, dict) else None
