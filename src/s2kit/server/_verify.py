"""``s2kit lite verify --data-dir DIR``: read every row of a stopped durable lite and check it.

Start-up checks what start-up reads (lmdb's pages, the metadata, and each stream's first and
last record), and reads check what they return; this reads everything else too:

* lmdb's pages, with py-lmdb's offline verifier (``_lmdb_txn.page_problems``) — first, and
  alone if it finds anything: lmdb must not walk damaged pages (it may crash on them);
* every value against its checksum (``_lmdb_keys.py``), every catalog row as JSON (usage
  accounting's rows as buckets, ``_accounting.py``; access tokens as tokens, ``_tokens.py``);
* each stream's records: consecutive seq_nums with non-decreasing timestamps, ending at the
  tail in its state row, starting no earlier than its first expiry run;
* the timestamp index against the records, entry for entry (both sort the same way, so one
  merged pass with no memory per record);
* the id map: names under their own hashes, ids below the next id, state and expiry rows
  only for known ids.

It opens lmdb read-only, without lmdb's lock file, while holding lite's own directory lock:
nothing is written, and lite cannot start meanwhile (nor can this run while lite does).
Problems are reported as they are found, the first :data:`SHOWN` of them in full.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lmdb

from s2kit.server import _lmdb_keys as K
from s2kit.server import _lmdb_txn as T
from s2kit.server._accounting import decode_row as decode_usage_row
from s2kit.server._datadir import DataDirError, DataDirLock
from s2kit.server._meta import TOKEN_KIND, USAGE_KIND, CorruptCatalog
from s2kit.server._tokens import grant_from_row

SHOWN = 50
"""Problems printed; the rest are counted."""


@dataclass
class Report:
    """What a scan found."""

    rows: dict[str, int] = field(default_factory=dict)
    """Rows read per sub-database."""
    problems: int = 0
    shown: list[str] = field(default_factory=list)
    on_problem: Callable[[str], None] | None = None

    def problem(self, text: str) -> None:
        """Record (and print, the first :data:`SHOWN`) one problem."""
        self.problems += 1
        if len(self.shown) < SHOWN:
            self.shown.append(text)
            if self.on_problem is not None:
                self.on_problem(text)


def verify(path: str | Path, on_problem: Callable[[str], None] | None = None) -> Report:
    """Scan the data directory ``path``.

    Raises:
        DataDirError: it cannot be scanned: missing, foreign, in use, truncated, not lite's
            or of another format version (one line).
    """
    root = Path(path)
    if not (root / "data.mdb").is_file():
        raise DataDirError(f"{root} holds no data.mdb: not a lite data directory")
    lock = DataDirLock(root)
    lock.acquire()
    try:
        try:
            env = lmdb.open(
                str(root), readonly=True, lock=False, max_dbs=len(K.DB_NAMES), create=False
            )
        except lmdb.Error as exc:
            raise DataDirError(f"{root / 'data.mdb'} is not an lmdb file ({exc})") from None
        try:
            T.check_size(env, root)
            report = Report(on_problem=on_problem)
            pages = T.page_problems(root)
            for problem in pages:
                report.problem(f"pages: {problem}")
            if not pages:
                _scan(env, root, report)
            return report
        finally:
            env.close()
    finally:
        lock.release()


def _open_dbs(env: lmdb.Environment, txn: T.Txn, root: Path) -> T.Dbs:
    names = set(txn.cursor().iternext(values=False))
    if not set(K.DB_NAMES) <= names:
        raise DataDirError(f"{root} holds an lmdb database that is not s2kit lite's")
    db = T.Dbs(env, txn, create=False)
    fmt, version = (
        T.marker(txn.get(b"format", db=db.meta)),
        T.marker(txn.get(b"version", db=db.meta)),
    )
    if fmt != K.FORMAT:
        raise DataDirError(f"{root} holds an lmdb database that is not s2kit lite's")
    if version != str(K.VERSION).encode():
        raise DataDirError(
            f"{root} holds format version {version!r}; this s2kit verifies version {K.VERSION}"
        )
    return db


def _scan(env: lmdb.Environment, root: Path, report: Report) -> None:
    with env.begin() as txn:
        db = _open_dbs(env, txn, root)
        ids = _scan_ids(txn, db, report)
        tails = _scan_rows(txn, db.state, "state", report, ids, _state_tail)
        first_runs = _scan_rows(txn, db.runs, "runs", report, ids, _run_start)
        _scan_catalog(txn, db, report)
        _scan_records(txn, db, report, ids, tails, first_runs)


def _guarded(report: Report, what: str, scan: Iterator[None]) -> None:
    """Run a scan, reporting an lmdb error (damaged pages) as a problem that ends it."""
    try:
        for _ in scan:
            pass
    except lmdb.Error as exc:
        report.problem(f"{what}: lmdb cannot read on ({exc})")


def _scan_ids(txn: T.Txn, db: T.Dbs, report: Report) -> set[int]:
    known: set[int] = set()
    next_id = 0

    def scan() -> Iterator[None]:
        nonlocal next_id
        raw = txn.get(b"next", db=db.meta)
        if raw is None:
            report.problem("meta: the next stream id is missing")
        else:
            try:
                next_id = K.decode_next_id(raw)
            except K.Damaged as exc:
                report.problem(f"meta: {exc}")
        n = 0
        for hashed, value in txn.cursor(db=db.ids):
            n += 1
            try:
                sid, _ = K.split_id_value(hashed, value)
            except K.Damaged as exc:
                report.problem(f"ids: {exc}")
                continue
            if sid in known:
                report.problem(f"ids: stream id {sid} is given to two names")
            known.add(sid)
            yield
        report.rows["ids"] = n
        n = 0
        for key, value in txn.cursor(db=db.gc):
            n += 1
            try:
                K.unseal(key, value, f"the deletion row of {key.hex()}")
                known.add(K.read_u64(key))
            except (K.Damaged, ValueError) as exc:
                report.problem(f"gc: {exc}")
            yield
        report.rows["gc"] = n

    _guarded(report, "ids", scan())
    if next_id and known and max(known) >= next_id:
        report.problem(f"meta: the next stream id is {next_id}, but {max(known)} is in use")
    return known


def _state_tail(key: bytes, value: bytes) -> int:
    tail, _, _, _ = K.state_wall_fields(key, value)
    return tail.seq_num


def _run_start(key: bytes, value: bytes) -> int:
    K.decode_expiry(key, value)
    return K.read_u64(key, 8)


def _scan_rows(
    txn: T.Txn,
    sub: Any,
    name: str,
    report: Report,
    known: set[int],
    decode: Callable[[bytes, bytes], int],
) -> dict[int, int]:
    """Check every row of ``state`` or ``runs``; per stream id, the first row's figure."""
    found: dict[int, int] = {}

    def scan() -> Iterator[None]:
        n = 0
        for key, value in txn.cursor(db=sub):
            n += 1
            sid = K.read_u64(key) if len(key) >= 8 else -1
            if sid not in known:
                report.problem(f"{name}: a row of unknown stream id {sid}")
            try:
                figure = decode(key, value)
            except (K.Damaged, ValueError) as exc:
                report.problem(f"{name}: {exc}")
                continue
            found.setdefault(sid, figure)
            yield
        report.rows[name] = n

    _guarded(report, name, scan())
    return found


def _scan_catalog(txn: T.Txn, db: T.Dbs, report: Report) -> None:
    def scan() -> Iterator[None]:
        n = 0
        for key, value in txn.cursor(db=db.catalog):
            n += 1
            try:
                payload = K.unseal(key, value, f"the row {key!r}")
                json.loads(payload)
                if key[:1] == USAGE_KIND:  # usage accounting's buckets: their shape too
                    decode_usage_row(key, payload)
                elif key[:1] == TOKEN_KIND:  # access tokens: each must load (``_tokens.py``)
                    grant_from_row(key, payload)
            except (K.Damaged, CorruptCatalog) as exc:
                report.problem(f"catalog: {exc}")
            except ValueError as exc:
                report.problem(f"catalog: the row {key!r} is not JSON of its kind ({exc})")
            yield
        report.rows["catalog"] = n

    _guarded(report, "catalog", scan())


class _Index:
    """The ``by_ts`` cursor, walked alongside the records: both sort by stream id and then by
    seq_num (timestamps never decrease along a stream), so each record's entry is next."""

    def __init__(self, txn: T.Txn, db: T.Dbs, report: Report) -> None:
        self.cur = txn.cursor(db=db.by_ts)
        self.report = report
        self.entries = 0
        self.entry: bytes | None = None
        self._load(self.cur.first())

    def _load(self, ok: bool) -> None:
        self.entry = self.cur.key() if ok else None
        if self.entry is not None:
            self.entries += 1
            if self.cur.value():
                self.report.problem(f"by_ts: the entry {self.entry.hex()} has a value")

    def _extra(self) -> None:
        assert self.entry is not None
        sid, ts, seq = K.split_ts_key(self.entry)
        self.report.problem(f"by_ts: stream id {sid}: an entry ({ts}, {seq}) with no record")
        self._load(self.cur.next())

    def expect(self, entry: bytes) -> None:
        """The entry of the next intact record."""
        while self.entry is not None and self.entry < entry:
            self._extra()
        if self.entry == entry:
            self._load(self.cur.next())
        else:
            sid, _, seq = K.split_ts_key(entry)
            self.report.problem(f"by_ts: stream id {sid}: no entry for seq_num {seq}")

    def skip(self, sid: int, seq: int) -> None:
        """A damaged record (its timestamp unknown): pass its entry if it is next."""
        if self.entry is not None and K.split_ts_key(self.entry)[::2] == (sid, seq):
            self._load(self.cur.next())

    def finish(self) -> None:
        """Entries after the last record have no record."""
        while self.entry is not None:
            self._extra()


def _scan_records(
    txn: T.Txn,
    db: T.Dbs,
    report: Report,
    known: set[int],
    tails: dict[int, int],
    first_runs: dict[int, int],
) -> None:
    index = _Index(txn, db, report)

    def end_of(sid: int, last: int) -> None:
        if sid not in tails:
            report.problem(f"records: stream id {sid}: records but no state row")
        elif last + 1 != tails[sid]:
            report.problem(
                f"records: stream id {sid}: they end at {last}, the tail is {tails[sid]}"
            )

    def scan() -> Iterator[None]:
        n = 0
        sid, last, last_ts = -1, -1, 0
        for key, value in txn.cursor(db=db.records):
            n += 1
            this, seq = K.split_record_key(key)
            if this != sid:
                if sid >= 0:
                    end_of(sid, last)
                sid, last, last_ts = this, seq - 1, 0
                if sid not in known:
                    report.problem(f"records: stream id {sid} is unknown")
                if seq < first_runs.get(sid, 0):
                    report.problem(f"records: stream id {sid}: seq_num {seq} before its runs")
            if seq != last + 1:
                report.problem(f"records: stream id {sid}: {last + 1} to {seq - 1} missing")
            last = seq
            try:
                (_, ts, _, _), _ = K.decode_record(key, value)
            except K.Damaged as exc:
                report.problem(f"records: {exc}")
                index.skip(sid, seq)
                yield
                continue
            if ts < last_ts:
                report.problem(f"records: stream id {sid}: seq_num {seq} goes back in time")
            last_ts = ts
            index.expect(K.ts_key(sid, ts, seq))
            yield
        if sid >= 0:
            end_of(sid, last)
        index.finish()
        report.rows["records"] = n
        report.rows["by_ts"] = index.entries

    _guarded(report, "records", scan())


def main(argv: list[str]) -> int:
    """Scan ``argv[0]``, print the problems as found and a summary; 0 if intact, 1 if not."""
    out = sys.stdout
    root = Path(argv[0])

    def show(text: str) -> None:
        out.write(f"  {text}\n")
        out.flush()

    out.write(f"s2kit lite verify: scanning {root / 'data.mdb'}\n")
    out.flush()
    try:
        report = verify(root, show)
    except DataDirError as exc:
        sys.stderr.write(f"s2kit lite verify: {exc}\n")
        return 1
    rows = ", ".join(f"{n} {name}" for name, n in report.rows.items())
    out.write(f"  rows read: {rows or 'none (the pages are damaged)'}\n")
    if report.problems:
        more = report.problems - len(report.shown)
        extra = f" ({more} more not shown)" if more else ""
        out.write(f"DAMAGED: {report.problems} problems{extra}\n")
        return 1
    out.write(
        "OK: every value matches its checksum, every stream's records run unbroken to its "
        "tail, and the timestamp index agrees\n"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
