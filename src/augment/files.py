"""Files: atomic writes (temporary file, fsync, replace), output folders that are never followed
through a link, and the job lock that keeps two searches off one file."""

from __future__ import annotations

import contextlib
import glob
import os
import tempfile
import threading
from collections.abc import Callable
from typing import Any

from .helpers import AugmentError

_TEMPORARY_PREFIX = ".augment-tmp-"


def _umask() -> int:
    try:  # Linux: read it without changing it (os.umask would, for every thread, for a moment)
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    with _UMASK_LOCK:
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


_UMASK_LOCK = threading.Lock()


def _temporary_prefix(path: str) -> str:
    """Temporary files for ``path`` start with this (what a killed job leaves; see _remove_temporaries)."""
    return f"{_TEMPORARY_PREFIX}{os.path.basename(path)[:100]}~"


def _file_path(path: str | os.PathLike, what: str) -> str:
    """``path`` as a file augment.py may write: not empty or blank (an unset shell variable), not
    ending in a separator or a blank name (``runs/$UNSET``), not an existing folder; else an error
    naming ``what``, before anything is written (a lock or rows folder would land beside it)."""
    path = os.fspath(path)
    name = os.path.basename(path)
    if not path.strip() or not name.strip() or path.endswith((os.sep, "/")):
        raise AugmentError(f"{what} {path!r} names no file (empty, blank, or ending in a separator: an unset "
                           f"shell variable?); give a file name such as analysis.json")
    if os.path.isdir(path):
        raise AugmentError(f"{what} {path} is a folder; give a file name such as {os.path.join(path, 'analysis.json')}")
    return path


def _write_atomic(path: str | os.PathLike, content: bytes | str | Callable[[Any], None],
                  durable: bool = True) -> str:
    """Write ``path`` whole or not at all; ``content`` is bytes, text or ``write(binary_file)``.

    ``durable=False`` skips the fsync (report frames: a crash may lose them, never tear them).
    A failure (a full disk) leaves the previous file as it was and names ``path``.
    """
    path = _file_path(path, "the file")
    folder = os.path.dirname(os.path.abspath(path))
    try:
        fd, tmp = tempfile.mkstemp(prefix=_temporary_prefix(path), suffix=".tmp", dir=folder)
    except OSError as exc:
        raise OSError(exc.errno, f"cannot write {path}: {exc.strerror}", path) from None
    try:
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(handle.fileno(), 0o666 & ~_umask())
            if callable(content):
                content(handle)
            else:
                handle.write(content.encode("utf-8") if isinstance(content, str) else content)
            handle.flush()
            if durable:
                os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(exc, OSError) and exc.errno is not None:
            raise OSError(exc.errno, f"cannot write {path}: {exc.strerror}", path) from None
        raise
    return path


def _remove_temporaries(folder: str, prefix: str = _TEMPORARY_PREFIX) -> None:
    """Temporary files a killed job left in ``folder`` (only called while holding its lock)."""
    for name in glob.glob(os.path.join(glob.escape(folder), glob.escape(prefix) + "*.tmp")):
        with contextlib.suppress(OSError):
            os.unlink(name)


def _own_folder(path: str | os.PathLike) -> str:
    """A folder augment.py writes into: created if needed; a symlink planted there is replaced
    by a real folder (the link's target is never touched); an existing file is an error."""
    path = os.fspath(path)
    if os.path.islink(path):
        os.unlink(path)
    if os.path.exists(path) and not os.path.isdir(path):
        raise AugmentError(f"{path} is a file, not a folder: choose another path or move the file")
    os.makedirs(path, exist_ok=True)
    return path


def _output_folder(path: str | os.PathLike, parameter: str) -> str:
    """The user's output folder (a link the user made is followed); an existing file is an error."""
    path = os.fspath(path)
    if os.path.exists(path) and not os.path.isdir(path):
        raise AugmentError(f"{parameter} {path} is an existing file, not a folder")
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as exc:
        raise AugmentError(f"cannot create {parameter} {path}: {exc.strerror}") from None
    return path


class _JobLock:
    """An advisory lock that one job holds on a cache file or output folder.

    A second job on the same file, in another process or this one, fails at once with an
    error naming the file and the holder's pid. POSIX record locks (``fcntl.lockf``) are
    released by the kernel when their holder dies, even by SIGKILL, so a killed job never
    leaves a stale lock; unlike ``flock`` they are not inherited by worker processes the job
    forks. Temporaries are cleaned only while holding it. (No lock where there is no fcntl.)
    """

    _held: set[str] = set()  # lock files held by this process
    _held_guard = threading.Lock()

    def __init__(self, lock_path: str, what: str):
        self.lock_path, self.what = os.path.abspath(lock_path), what
        self._fd: int | None = None

    def _busy(self, holder: str) -> AugmentError:
        return AugmentError(f"{self.what} is in use by another augment.py job (pid {holder}); wait for it to "
                            f"finish or stop it (lock file {self.lock_path})")

    def __enter__(self) -> _JobLock:
        try:
            import fcntl
        except ImportError:
            return self
        with self._held_guard:
            if self.lock_path in self._held:
                raise self._busy(str(os.getpid()))
            flags = os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | getattr(os, "O_NOFOLLOW", 0)
            try:
                fd = os.open(self.lock_path, flags, 0o666)
            except OSError as exc:
                raise AugmentError(f"cannot lock {self.what}: {self.lock_path}: {exc.strerror}") from None
            try:
                fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "unknown"
                os.close(fd)
                raise self._busy(holder) from None
            os.ftruncate(fd, 0)
            os.pwrite(fd, str(os.getpid()).encode(), 0)
            self._held.add(self.lock_path)
            self._fd = fd
        return self

    def __exit__(self, *exc_info: Any) -> None:
        if self._fd is not None:
            with self._held_guard:
                os.close(self._fd)  # closing releases the lock; the file stays (removing it would race)
                self._held.discard(self.lock_path)
                self._fd = None


def _lock_for_file(path: str) -> _JobLock:
    folder, name = os.path.split(os.path.abspath(path))
    return _JobLock(os.path.join(folder, f".{name}.lock"), f"analysis file {path}")


def _lock_for_folder(folder: str) -> _JobLock:
    return _JobLock(os.path.join(folder, ".augment.lock"), f"folder {folder}")
