"""Crash-safe file writing: write under a temporary name, flush to disk, then rename."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import shutil
import stat
from typing import Any, Iterator

from trinet.core.errors import WriteError


def _fsync_dir(directory: str) -> None:
    try:
        fd = os.open(directory or ".", os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def path_problem(path: str, kind: str = "file") -> str | None:
    """Why `path` is not an existing `kind` ('file' or 'folder'), in words for a message, or None if it
    is one: 'not found', 'a directory', 'a file', 'a symbolic link loop', 'a broken symbolic link', ...

    A directory or a link loop is not reported as missing: the words say what is really there.
    """
    if kind not in ("file", "folder"):
        raise ValueError(f"kind must be 'file' or 'folder'. Received: kind={kind!r}")
    try:
        mode = os.stat(path).st_mode
    except OSError as e:
        if e.errno == errno.ELOOP:
            return "a symbolic link loop"
        if os.path.islink(path):
            return f"a broken symbolic link (to {os.readlink(path)})"
        if e.errno == errno.ENOTDIR:
            return "a path below a file"
        if e.errno == errno.ENOENT:
            return "not found"
        return f"not accessible ({e.strerror})"
    if kind == "file" and stat.S_ISDIR(mode):
        return "a directory"
    if kind == "folder" and not stat.S_ISDIR(mode):
        return "a file" if stat.S_ISREG(mode) else "not a folder"
    return None


def make_directory(path: str) -> None:
    """Create the directory `path` and its parents if needed.

    Raises:
        WriteError: it cannot be created (a full disk, no permission, a file in the way).
    """
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as e:
        raise WriteError(f"Could not create the directory {path}: {e.strerror or e}", e) from None


def temporary_name(path: str) -> str:
    """A hidden name next to `path` that is unique to this process."""
    directory, name = os.path.split(os.path.abspath(path))
    return os.path.join(directory, f".{name}.tmp-{os.getpid()}")


def _fsync_file(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class AtomicTarget:
    """The steps of `atomic_path`, for writers that are context managers themselves.

    Write `tmp`, then call `commit()` once everything was written and closed without an error, or
    `abort(error)` after any failure (of a write, a flush or a close): it removes `tmp`, never
    renames, and returns the exception to raise.
    """

    def __init__(self, path: str):
        self.path, self.tmp = path, temporary_name(path)

    def commit(self) -> None:
        """Flush `tmp` to disk and rename it to `path` in one step.

        Raises:
            WriteError: the flush or the rename failed; `tmp` is removed and `path` unchanged.
        """
        try:
            _fsync_file(self.tmp)
            os.replace(self.tmp, self.path)
        except OSError as e:
            raise self.abort(e) from None
        _fsync_dir(os.path.dirname(os.path.abspath(self.path)))

    def abort(self, error: BaseException) -> BaseException:
        """Remove `tmp`; return `error`, or for an `OSError` a `WriteError` naming `path` and the cause."""
        with contextlib.suppress(OSError):
            os.remove(self.tmp)
        if not isinstance(error, OSError) or isinstance(error, WriteError):
            return error
        kept = "the previous file there is unchanged" if os.path.exists(self.path) else "nothing was written"
        return WriteError(f"Could not write {self.path}: {error.strerror or error}; {kept}.", error)


@contextlib.contextmanager
def atomic_path(path: str) -> Iterator[str]:
    """Yield a temporary path to write; on success it replaces `path` in one step.

    Readers see either the old file or the complete new one, never a partial file, even if the
    process is killed at any moment. On an exception the temporary file is removed and `path` is
    left untouched; an `OSError` (a full disk while writing, flushing or renaming) becomes a
    `WriteError` that names `path` and the cause.
    """
    target = AtomicTarget(path)
    try:
        yield target.tmp
    except BaseException as e:
        failure = target.abort(e)
        if failure is e:
            raise
        raise failure from None
    target.commit()


def copy_folder_atomic(source: str, path: str) -> None:
    """Copy the folder `source` to `path`, which must not exist, so that `path` appears complete or not at
    all: the copy is made under a temporary name next to `path`, flushed to disk, then renamed.

    Raises:
        WriteError: the copy or the rename failed (`path` then does not exist; the copy is removed).
    """
    tmp = temporary_name(path)
    try:
        shutil.copytree(source, tmp)
    except BaseException as e:
        shutil.rmtree(tmp, ignore_errors=True)
        raise _folder_error(e, path, "nothing was written") from None
    publish_folder(tmp, path)


def _folder_error(error: BaseException, path: str, kept: str) -> BaseException:
    """`error`, or for an `OSError` (also `shutil.Error`, whose text is a list of tuples) one line naming
    `path`."""
    if not isinstance(error, OSError) or isinstance(error, WriteError):
        return error
    if isinstance(error, shutil.Error):  # its args: [(source, destination, message), ...]
        failures = error.args[0] if error.args and isinstance(error.args[0], list) else []
        reason = str(failures[0][2]) if failures and len(failures[0]) == 3 else "a file could not be copied"
        reason = re.sub(r"^\[Errno \d+\] ", "", reason)
        more = f" (and {len(failures) - 1} more files)" if len(failures) > 1 else ""
        return WriteError(f"Could not write {path}: {reason}{more}; {kept}.", error)
    return WriteError(f"Could not write {path}: {getattr(error, 'strerror', None) or error}; {kept}.", error)


def publish_folder(tmp: str, path: str, replace: bool = False) -> None:
    """Flush the folder `tmp` (written next to `path`, e.g. at `temporary_name(path)`) to disk and rename
    it to `path` in one step, so that `path` appears complete or not at all.

    Without `replace`, `path` must not exist; with it, a folder at `path` is replaced (moved aside, then
    removed once the new one is in place). The caller decides what may be replaced.

    Raises:
        WriteError: the flush or the rename failed; `tmp` is removed and `path` unchanged.
    """
    old = None
    try:
        for folder, _, files in os.walk(tmp):
            for name in files:
                _fsync_file(os.path.join(folder, name))
            _fsync_dir(folder)
        if os.path.lexists(path):
            if not replace:
                raise FileExistsError(errno.EEXIST, "it exists", path)
            old = f"{tmp}-old"
            os.rename(path, old)
        os.rename(tmp, path)
    except BaseException as e:
        if old is not None and not os.path.lexists(path):
            with contextlib.suppress(OSError):
                os.rename(old, path)
        shutil.rmtree(tmp, ignore_errors=True)
        raise _folder_error(e, path, "the previous folder there is unchanged" if os.path.lexists(path)
                            else "nothing was written") from None
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    _fsync_dir(os.path.dirname(os.path.abspath(path)))


def write_text_atomic(path: str, text: str) -> None:
    """Write `text` to `path` atomically (see `atomic_path`)."""
    with atomic_path(path) as tmp:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)


def write_json_atomic(path: str, obj: Any) -> None:
    """Write `obj` as indented, key-sorted JSON to `path` atomically."""
    write_text_atomic(path, json.dumps(obj, ensure_ascii=False, indent=2, sort_keys=True) + "\n")


def pid_exists(pid: int) -> bool:
    """Whether a process `pid` exists on this machine (another user's counts)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


#: A temporary name of `temporary_name` (`.NAME.tmp-PID`), with any suffix a writer adds (`.keras`, `-old`).
_TEMPORARY = re.compile(r"\.(?P<name>.+)\.tmp-(?P<pid>\d+)(?:[.-].*)?")


def remove_stale_temporaries(directory: str, name: str | None = None) -> list[str]:
    """Delete the temporary files and folders (see `temporary_name`) that killed processes left in
    `directory`; returns their names.

    Only entries `.NAME.tmp-PID...` whose process no longer exists on this machine are removed
    (those of this process and of live processes are kept); with `name`, only those of that `NAME`.
    """
    removed: list[str] = []
    try:
        entries = os.listdir(directory or ".")
    except OSError:
        return removed
    for entry in entries:
        match = _TEMPORARY.fullmatch(entry)
        if not match or (name is not None and match["name"] != name):
            continue
        pid = int(match["pid"])
        if pid == os.getpid() or pid_exists(pid):
            continue
        path = os.path.join(directory, entry)
        try:
            if os.path.isdir(path) and not os.path.islink(path):
                shutil.rmtree(path)
            else:
                os.remove(path)
        except OSError:
            continue
        removed.append(entry)
    return sorted(removed)


def file_sha256(path: str, block: int = 1 << 20) -> str:
    """The SHA-256 (hex) of the bytes of the file `path`, read in blocks of `block` bytes."""
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(block):
            digest.update(chunk)
    return digest.hexdigest()
