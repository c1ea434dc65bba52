"""How durable lite reports a disk that refuses writes and data that fails its checksums.

Both are operator problems, not bugs, so each is one clear log line rather than a traceback:

* **Writes.** lmdb reports a full disk as whatever the failed ``write`` said — often
  ``Input/output error`` (a short write), or ``File too large`` under a file-size limit — so
  :func:`diagnose` looks at the free space and the limit to say which it is. The first failed
  write of an outage is logged; the ones after it are counted, and the first write that
  succeeds again logs the recovery. The batches of a failed round fail with ``storage`` (500,
  retryable) and nothing of them is visible (``_lmdb.py``).
* **Damage.** A record or row that fails its checksum fails the request that read it with
  ``storage`` and is logged once per place (a reader retrying does not flood the log); the
  message points at ``s2kit lite verify``. Wrong data is never returned.

Both exceptions are :class:`~s2kit.server._storage.Reported`: the committer and the
background jobs, which log any other exception with its traceback, log these no further.
"""

from __future__ import annotations

import logging
import os
import resource
import threading
from typing import TYPE_CHECKING

from s2kit.errors import ErrorCode, ServerError
from s2kit.server._storage import Reported

if TYPE_CHECKING:
    from pathlib import Path

log = logging.getLogger("s2kit.server")

WRITE_HEADROOM = 8 << 20
"""Room a write transaction may need beyond its payload (copied pages, index, free list)."""
_REPORTED_MAX = 1024  # damaged places remembered, so a repeated read logs nothing new


class StorageFailure(Reported, Exception):
    """A write the disk refused; the message is the reason, one line (already logged)."""


class DamagedData(Reported, ServerError):
    """Stored data failed its checksum or the rows disagree (``storage``, 500; logged)."""


def _mib(n: int) -> str:
    return f"{n / (1 << 20):.1f} MiB"


def diagnose(error: BaseException, root: Path, need: int) -> tuple[str, str]:
    """Why a write of about ``need`` bytes to ``root/data.mdb`` failed: a short reason for
    clients, and the facts behind it for the log."""
    soft, _ = resource.getrlimit(resource.RLIMIT_FSIZE)
    try:
        size = (root / "data.mdb").stat().st_size
        fs = os.statvfs(root)
    except OSError:
        return "write failed", str(error)
    # Root may use the blocks reserved for it; anyone else only the available ones.
    free = (fs.f_bfree if os.geteuid() == 0 else fs.f_bavail) * fs.f_frsize
    if soft != resource.RLIM_INFINITY and size + need > soft:
        return "the file size limit is reached", f"ulimit -f is {_mib(soft)}; {error}"
    if free < need:
        return "the disk is full", f"{_mib(free)} free; {error}"
    return "write failed", str(error)


class FaultLog:
    """One line per outage and per damaged place (thread-safe: the writer thread uses it)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._lock = threading.Lock()
        self._failed = 0
        self._reported: set[str] = set()

    def write_failed(self, error: BaseException, need: int) -> StorageFailure:
        """The exception for a failed write, logged if it starts an outage."""
        reason, facts = diagnose(error, self.root, need)
        return self.failed(reason, facts)

    def failed(self, reason: str, facts: str) -> StorageFailure:
        """The exception for a write that failed for ``reason``, logged if it starts an outage."""
        with self._lock:
            self._failed += 1
            first = self._failed == 1
        if first:
            log.error(
                "storage: cannot write to %s: %s (%s); appends fail with `storage` until it can",
                self.root / "data.mdb",
                reason,
                facts,
            )
        return StorageFailure(reason)

    def write_succeeded(self) -> None:
        """Log the end of an outage, if one was going on."""
        with self._lock:
            failed, self._failed = self._failed, 0
        if failed:
            log.warning("storage: writing again after %d failed writes", failed)

    def damaged(self, where: str, detail: str) -> DamagedData:
        """The error for a request that met damaged data, logged once per place."""
        with self._lock:
            new = where not in self._reported and len(self._reported) < _REPORTED_MAX
            if new:
                self._reported.add(where)
        if new:
            log.error(
                "storage: %s is damaged: %s: %s; it is not served (check the whole store "
                "with `s2kit lite verify --data-dir %s` while lite is stopped)",
                self.root / "data.mdb",
                where,
                detail,
                self.root,
            )
        code = ErrorCode.STORAGE
        return DamagedData(
            code.status, code.value, f"stored data is damaged ({where}); see lite's log"
        )
