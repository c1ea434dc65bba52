"""Integrity of durable lite's data (lite under hostile conditions): a truncated or damaged data
file, records that fail their checksums or are missing, a full disk, and ``s2kit lite verify``.

The rules: lite never answers 200 with data that is not what was written, never ends a read
early as if the stream ended there, and never dies of a damaged file (SIGBUS). A file damaged
where start-up looks is refused with one line; damage found by a read fails that read with
``storage`` (500) and one log line; a full disk is one clear error and one log line, and
appends work again once space returns.

Files are damaged while lite is stopped, by writing into ``data.mdb`` (random bytes, as a
failing disk would) or through lmdb itself (a row rewritten or deleted, leaving lmdb's pages
sound: damage only our checks can see).
"""

from __future__ import annotations

import asyncio
import base64
import logging
import os
import random
import resource
import shutil
import signal
import subprocess
import sys
from typing import TYPE_CHECKING

import httpx
import lmdb
import pytest

from s2kit import AppendInput, Record, SeqNum
from s2kit.cli import main
from s2kit.cli._main import build_parser
from s2kit.errors import ServerError
from s2kit.server import DataDirError
from s2kit.server import _lmdb_keys as K
from s2kit.server._lmdb import LmdbStorage

from ._proc import free_port
from ._util import BASIN, running

if TYPE_CHECKING:
    from pathlib import Path

    from s2kit import Stream

STREAMS = ("s0", "s1", "s2")
COUNT = 600
START_TIMEOUT = 30.0


def body_of(stream: str, seq: int) -> bytes:
    """A body unique to its record, so its bytes can be found in the file."""
    return f"<{stream}:{seq:06d}>".encode() * 12


async def _fill(root: Path, streams: tuple[str, ...] = STREAMS, count: int = COUNT) -> None:
    async with running(root) as (_, c):
        await c.create_basin(BASIN)
        for name in streams:
            await c.basin(BASIN).create_stream(name)
            s = c.basin(BASIN).stream(name)
            for first in range(0, count, 100):
                records = [Record(body=body_of(name, i)) for i in range(first, first + 100)]
                await s.append(AppendInput(records=records))


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data directory with :data:`COUNT` known records in each of :data:`STREAMS`."""
    root = tmp_path_factory.mktemp("store") / "data"
    asyncio.run(_fill(root))
    return root


def copy_of(store: Path, tmp_path: Path) -> Path:
    root = tmp_path / "data"
    shutil.copytree(store, root)
    (root / "s2kit.lock").unlink(missing_ok=True)
    return root


def flip_body(root: Path, stream: str, seq: int) -> None:
    """Damage one record's body in place, as a bad sector would."""
    path = root / "data.mdb"
    data = bytearray(path.read_bytes())
    at = data.find(body_of(stream, seq))
    assert at > 0, (stream, seq)
    data[at + 20] ^= 0xFF
    path.write_bytes(bytes(data))


def _raw_env(root: Path) -> lmdb.Environment:
    return lmdb.open(str(root), max_dbs=len(K.DB_NAMES))


def _sid(env: lmdb.Environment, stream: str) -> int:
    with env.begin() as txn:
        raw = txn.get(K.id_key((BASIN, stream)), db=env.open_db(b"ids", txn=txn))
    assert raw is not None
    return K.read_u64(raw)


async def _read_all(url: str, stream: str, count: int = COUNT) -> dict[int, bytes | int]:
    """Every seq_num's body, or the status of the error met there (reading on past it)."""
    got: dict[int, bytes | int] = {}
    seq = 0
    async with httpx.AsyncClient(base_url=url, headers={"s2-basin": BASIN}, timeout=10) as c:
        while seq < count:
            resp = await c.get(
                f"/v1/streams/{stream}/records",
                params={"seq_num": seq},
                headers={"s2-format": "base64"},
            )
            if resp.status_code != 200:
                assert resp.json()["code"] == "storage", resp.text
                got[seq] = resp.status_code
                seq += 1
                continue
            records = resp.json()["records"]
            assert records, f"a read from {seq} of {count} came back empty: {resp.text}"
            for r in records:
                assert r["seq_num"] == seq, (r["seq_num"], seq)
                got[seq] = base64.b64decode(r.get("body", ""))
                seq += 1
    return got


# --- a data file refused at start-up, in a child process (a SIGBUS kills only it) ---------------


def _spawn(root: Path, port: int, log: Path, *flags: str) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                "s2kit",
                "lite",
                "--port",
                str(port),
                "--data-dir",
                str(root),
                *flags,
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
        )


async def _start(root: Path, tmp_path: Path, *flags: str) -> tuple[subprocess.Popen[bytes], str]:
    """``s2kit lite --data-dir ROOT`` as a child: returns once it serves or has exited."""
    port = free_port()
    proc = _spawn(root, port, tmp_path / "lite.log", *flags)
    url = f"http://127.0.0.1:{port}"
    loop = asyncio.get_running_loop()
    deadline = loop.time() + START_TIMEOUT
    async with httpx.AsyncClient(base_url=url, timeout=1) as c:
        while proc.poll() is None and loop.time() < deadline:
            try:
                if (await c.get("/health")).status_code == 200:
                    break
            except httpx.HTTPError:
                await asyncio.sleep(0.05)
    return proc, url


def _stop(proc: subprocess.Popen[bytes]) -> int:
    if proc.poll() is None:
        proc.send_signal(signal.SIGKILL)
    return proc.wait()


async def _assert_refused(root: Path, tmp_path: Path, what: str) -> str:
    """Lite refuses to start on ``root`` with one line; if it serves instead, everything it
    serves must be right (today it is not, or it dies of a SIGBUS reading it)."""
    proc, url = await _start(root, tmp_path)
    try:
        if proc.poll() is None:
            for stream in STREAMS:
                got = await _read_all(url, stream)
                wrong = [s for s, b in got.items() if b != body_of(stream, s) and b != 500]
                assert not wrong, f"lite served wrong data for {stream}: seq_nums {wrong[:10]}"
            raise AssertionError(f"lite served a {what} data file")
    finally:
        code = _stop(proc)
        output = (tmp_path / "lite.log").read_text(errors="replace")
    assert code == 1, f"exit {code} ({signal.Signals(-code).name if code < 0 else ''}): {output}"
    assert output.count("\n") == 1, output
    assert "Traceback" not in output
    return output


async def test_a_truncated_data_file_is_refused_at_start_up(store: Path, tmp_path: Path) -> None:
    root = copy_of(store, tmp_path)
    path = root / "data.mdb"
    os.truncate(path, path.stat().st_size * 6 // 10)
    output = await _assert_refused(root, tmp_path, "truncated")
    assert output.startswith(f"s2kit lite: {path} is truncated")


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_random_damage_is_refused_at_start_up(store: Path, tmp_path: Path, seed: int) -> None:
    # 200 random 16-byte writes past the two meta pages, as in the report.
    root = copy_of(store, tmp_path)
    path = root / "data.mdb"
    rng = random.Random(seed)
    data = bytearray(path.read_bytes())
    for _ in range(200):
        at = rng.randrange(2 * 4096, len(data) - 16)
        data[at : at + 16] = rng.randbytes(16)
    path.write_bytes(bytes(data))
    output = await _assert_refused(root, tmp_path, "damaged")
    assert output.startswith(f"s2kit lite: {path} is damaged (")


def _damage_a_page_header(root: Path) -> int:
    """Flip the flags of the lmdb page holding s1's record 300 (not one start-up reads)."""
    path = root / "data.mdb"
    data = bytearray(path.read_bytes())
    at = data.find(body_of("s1", 300))
    page = at - at % 4096
    data[page + 10] ^= 0xFF
    path.write_bytes(bytes(data))
    return page // 4096


async def test_skip_page_check_starts_on_a_page_only_the_check_finds(
    store: Path, tmp_path: Path
) -> None:
    # The page check is what refuses this file: without it (--skip-page-check, for a large
    # store lite must start fast on) lite serves, and streams on sound pages read back whole.
    root = copy_of(store, tmp_path)
    page = _damage_a_page_header(root)
    with pytest.raises(DataDirError, match=rf"page {page} carries"):
        LmdbStorage(root)
    proc, url = await _start(root, tmp_path, "--skip-page-check")
    try:
        assert proc.poll() is None, (tmp_path / "lite.log").read_text(errors="replace")
        for stream in ("s0", "s2"):
            assert await _read_all(url, stream) == {s: body_of(stream, s) for s in range(COUNT)}
    finally:
        _stop(proc)


def test_a_damaged_state_row_is_refused_at_start_up(store: Path, tmp_path: Path) -> None:
    root = copy_of(store, tmp_path)
    env = _raw_env(root)
    sid = _sid(env, "s1")
    with env.begin(write=True) as txn:
        db = env.open_db(b"state", txn=txn)
        value = bytearray(txn.get(K.u64(sid), db=db))
        value[3] ^= 0x01  # the tail, one bit off
        txn.put(K.u64(sid), bytes(value), db=db)
    env.close()
    with pytest.raises(DataDirError) as info:
        LmdbStorage(root)
    message = str(info.value)
    assert "\n" not in message
    assert f"is damaged (the state of stream id {sid}: checksum mismatch)" in message


def test_a_format_version_1_store_is_refused(store: Path, tmp_path: Path) -> None:
    root = copy_of(store, tmp_path)
    env = _raw_env(root)
    with env.begin(write=True) as txn:
        txn.put(b"version", b"1", db=env.open_db(b"meta", txn=txn))
    env.close()
    with pytest.raises(DataDirError, match=r"holds format version 1 \(no checksums\)"):
        LmdbStorage(root)


# --- damage found by reads ------------------------------------------------------------------------


async def _session_until_error(stream: Stream) -> tuple[list[int], ServerError]:
    """The seq_nums a read session from 0 delivers before it fails, and its error."""
    seen: list[int] = []
    try:
        async for batch in stream.read_session(start=SeqNum(0)):
            seen += [r.seq_num for r in batch.records]
    except ServerError as exc:
        return seen, exc
    raise AssertionError(f"the session ended without an error after {len(seen)} records")


async def test_damaged_records_are_a_storage_error_never_wrong_data(
    store: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    root = copy_of(store, tmp_path)
    for seq in (100, 400):
        flip_body(root, "s1", seq)
    caplog.set_level(logging.INFO, logger="s2kit")
    async with running(root) as (lite, c):
        got = await _read_all(lite.url, "s1")
        assert {s for s, b in got.items() if b == 500} == {100, 400}
        assert all(got[s] == body_of("s1", s) for s in got if s not in (100, 400))
        for stream in ("s0", "s2"):  # the other streams are untouched
            assert await _read_all(lite.url, stream) == {
                s: body_of(stream, s) for s in range(COUNT)
            }
        # A session from the start gets every intact record, then the error: never a gap.
        seen, error = await _session_until_error(c.basin(BASIN).stream("s1"))
        assert (error.status, error.code) == (500, "storage")
        assert seen == list(range(100))
    damaged = [r for r in caplog.records if "is damaged" in r.getMessage()]
    assert len(damaged) == 1, [r.getMessage() for r in damaged]  # once per stream
    assert "durable-basin/s1" in damaged[0].getMessage()
    assert not [r for r in caplog.records if r.exc_info], "a traceback was logged"


async def test_a_record_missing_in_the_middle_is_an_error_not_the_end(
    store: Path, tmp_path: Path
) -> None:
    # A damaged key loses its record from where reads look: lmdb's pages stay sound, so only
    # the rows' agreement (consecutive seq_nums up to the tail) shows it.
    root = copy_of(store, tmp_path)
    env = _raw_env(root)
    sid = _sid(env, "s2")
    with env.begin(write=True) as txn:
        records, by_ts = env.open_db(b"records", txn=txn), env.open_db(b"by_ts", txn=txn)
        value = txn.get(K.record_key(sid, 300), db=records)
        assert txn.delete(K.record_key(sid, 300), db=records)
        assert txn.delete(K.ts_key(sid, K.read_u64(value), 300), db=by_ts)
    env.close()
    async with running(root) as (lite, c):
        async with httpx.AsyncClient(base_url=lite.url, headers={"s2-basin": BASIN}) as h:
            resp = await h.get("/v1/streams/s2/records", params={"seq_num": 300})
            assert resp.status_code == 500, resp.text  # was 200 {"records":[]}
            assert resp.json()["code"] == "storage"
            resp = await h.get("/v1/streams/s2/records", params={"seq_num": 250})
            assert [r["seq_num"] for r in resp.json()["records"]] == list(range(250, 300))
        seen, error = await _session_until_error(c.basin(BASIN).stream("s2"))
        assert (error.status, error.code) == (500, "storage")
        assert seen == list(range(300))


# --- a full disk --------------------------------------------------------------------------------


async def test_a_full_disk_is_one_clear_error_and_recovers(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # RLIMIT_FSIZE fails every write past the file's current size, as a full disk does (lmdb
    # then reports "File too large" or, for a short write, "Input/output error").
    root = tmp_path / "data"
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    caplog.set_level(logging.INFO, logger="s2kit")
    async with running(root) as (_, c):
        await c.create_basin(BASIN)
        await c.basin(BASIN).create_stream("s")
        s = c.basin(BASIN).stream("s")
        await s.append(AppendInput(records=[Record(body=b"first")]))
        resource.setrlimit(resource.RLIMIT_FSIZE, ((root / "data.mdb").stat().st_size, hard))
        errors: list[ServerError] = []
        try:
            for i in range(200):
                try:
                    await s.append(AppendInput(records=[Record(body=bytes([i]) * 1024)] * 32))
                except ServerError as exc:
                    errors.append(exc)
                    if len(errors) == 3:
                        break
        finally:
            resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        assert len(errors) == 3, "the disk never filled"
        for exc in errors:
            assert (exc.status, exc.code) == (500, "storage")
            assert exc.message == "storage error: the file size limit is reached", exc.message
        ack = await s.append(AppendInput(records=[Record(body=b"after")]))
    lines = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    failed = [m for m in lines if "cannot write to" in m]
    assert len(failed) == 1, lines  # one line for the outage, not one per commit
    assert "the file size limit is reached" in failed[0]
    assert any("writing again after 3 failed writes" in m for m in lines), lines
    assert not [r for r in caplog.records if r.exc_info], "a traceback was logged"
    async with running(root) as (_, c):  # and what was acked is all there
        assert (await c.basin(BASIN).stream("s").check_tail()).seq_num == ack.end.seq_num


def test_a_full_disk_is_named_as_such(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from s2kit.server import _lmdb_faults as F

    (tmp_path / "data.mdb").write_bytes(b"\0" * 4096)
    real = os.statvfs(tmp_path)

    class Full:
        f_bavail = f_bfree = 3
        f_frsize = real.f_frsize

    monkeypatch.setattr(F.os, "statvfs", lambda _: Full())
    reason, facts = F.diagnose(OSError("mdb_txn_commit: Input/output error"), tmp_path, 1 << 20)
    assert reason == "the disk is full"
    assert facts.endswith("free; mdb_txn_commit: Input/output error")


# --- s2kit lite verify ----------------------------------------------------------------------------


def test_verify_a_sound_store(
    store: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = copy_of(store, tmp_path)
    assert main(["lite", "verify", "--data-dir", str(root)]) == 0
    out = capsys.readouterr().out
    assert f"{3 * COUNT} records, {3 * COUNT} by_ts" in out
    assert out.rstrip().endswith("the timestamp index agrees")


def test_verify_finds_damaged_and_missing_records(
    store: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = copy_of(store, tmp_path)
    flip_body(root, "s0", 7)
    env = _raw_env(root)
    sid0, sid2 = _sid(env, "s0"), _sid(env, "s2")
    with env.begin(write=True) as txn:
        assert txn.delete(K.record_key(sid2, 42), db=env.open_db(b"records", txn=txn))
    env.close()
    assert main(["lite", "verify", "--data-dir", str(root)]) == 1
    out = capsys.readouterr().out
    assert f"records: the record at stream id {sid0}, seq_num 7: checksum mismatch" in out
    assert f"records: stream id {sid2}: 42 to 42 missing" in out
    assert f"by_ts: stream id {sid2}: an entry" in out  # the index still has the lost one
    assert "DAMAGED: 3 problems" in out


def test_verify_finds_damaged_pages_without_crashing(
    store: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = copy_of(store, tmp_path)
    path = root / "data.mdb"
    rng = random.Random(7)
    data = bytearray(path.read_bytes())
    for _ in range(200):
        at = rng.randrange(2 * 4096, len(data) - 16)
        data[at : at + 16] = rng.randbytes(16)
    path.write_bytes(bytes(data))
    assert main(["lite", "verify", "--data-dir", str(root)]) == 1
    out = capsys.readouterr().out
    assert "\n  pages: " in out
    assert "DAMAGED" in out


def test_verify_refuses_what_it_cannot_scan(
    store: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = copy_of(store, tmp_path)
    path = root / "data.mdb"
    os.truncate(path, path.stat().st_size // 2)
    assert main(["lite", "verify", "--data-dir", str(root)]) == 1
    assert capsys.readouterr().err.startswith(f"s2kit lite verify: {path} is truncated")
    assert main(["lite", "verify", "--data-dir", str(tmp_path / "nothing")]) == 1
    assert "holds no data.mdb" in capsys.readouterr().err
    assert main(["lite", "verify"]) == 2  # --data-dir is required


def test_verify_refuses_a_store_in_use(
    store: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = copy_of(store, tmp_path)
    storage = LmdbStorage(root)
    try:
        assert main(["lite", "verify", "--data-dir", str(root)]) == 1
    finally:
        storage.close()
    assert "is in use by another lite process" in capsys.readouterr().err


def test_lite_flags_still_parse_without_a_sub_command() -> None:
    args, extra = build_parser().parse_known_args(["lite", "--port", "0", "--data-dir", "d"])
    assert (extra, args.command, args.lite_command, args.port, args.data_dir) == (
        [],
        "lite",
        None,
        0,
        "d",
    )
