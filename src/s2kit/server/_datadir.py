"""Lite's data directory: what may be in it, and the lock that keeps a second process out.

A data directory holds exactly lmdb's two files (``data.mdb``, ``lock.mdb``) and our lock file
(``s2kit.lock``). Anything else means the directory belongs to something else, and lite
refuses it before touching a single file: it never initializes, overwrites or "repairs" a
directory it did not create.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path

LOCK_FILE = "s2kit.lock"
DATA_FILES = frozenset({"data.mdb", "lock.mdb", LOCK_FILE})


class DataDirError(Exception):
    """The data directory cannot be used: foreign, corrupt, newer, or in use by another process.

    Raised when lite starts; the message is one line meant for the operator.
    """


class DataDirLock:
    """An exclusive ``flock`` on ``DIR/s2kit.lock``, held for the life of the storage."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock or raise :class:`DataDirError` naming the holder."""
        lock_path = self.path / LOCK_FILE
        try:
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            raise DataDirError(f"cannot open {lock_path}: {exc.strerror}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise DataDirError(
                f"data directory {self.path} is in use by another lite process (pid {holder})"
            ) from None
        except OSError as exc:
            os.close(fd)
            raise DataDirError(f"cannot lock {lock_path}: {exc.strerror}") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        """Drop the lock (idempotent)."""
        fd, self._fd = self._fd, None
        if fd is not None:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, 0)
            os.close(fd)  # closing the descriptor releases the flock


def claim(path: str | os.PathLike[str]) -> tuple[Path, DataDirLock, bool]:
    """Create or check the data directory and lock it.

    Returns:
        The directory, its held lock, and whether lmdb's data file already exists.

    Raises:
        DataDirError: not a directory, foreign contents, not writable, or locked.
    """
    root = Path(path)
    try:
        root.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise DataDirError(f"{root} exists and is not a directory") from None
    except OSError as exc:
        raise DataDirError(f"cannot create data directory {root}: {exc.strerror}") from None
    try:
        entries = sorted(os.listdir(root))
    except OSError as exc:
        raise DataDirError(f"cannot list data directory {root}: {exc.strerror}") from None
    foreign = [e for e in entries if e not in DATA_FILES]
    if foreign:
        shown = ", ".join(foreign[:3]) + (", ..." if len(foreign) > 3 else "")
        raise DataDirError(
            f"{root} is not an s2kit lite data directory (it holds {shown}); "
            "refusing to use it: point --data-dir at an empty or new directory"
        )
    lock = DataDirLock(root)
    lock.acquire()
    return root, lock, "data.mdb" in entries
