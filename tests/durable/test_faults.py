"""Durable lite under bad input and faults (issue 5): foreign, corrupt or newer data
directories, a second process, a full map and a disk that refuses to grow.

Start-up problems must be one clear error with nothing overwritten. A full or failing disk must
fail appends with ``storage`` (500) and never leave part of a batch visible, and lite must
recover once space returns.
"""

from __future__ import annotations

import asyncio
import os
import resource
import subprocess
import sys
from typing import TYPE_CHECKING

import lmdb
import pytest

from s2kit import S2, AppendInput, Record, SeqNum
from s2kit.cli import main
from s2kit.errors import ServerError
from s2kit.server import DataDirError
from s2kit.server._lmdb import LmdbStorage

from ._proc import LiteChild, free_port
from ._util import BASIN, eventually, lmdb_of, running

if TYPE_CHECKING:
    from pathlib import Path


def _snapshot(root: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(root.iterdir()) if p.name != "s2kit.lock"}


def _refused(root: Path) -> str:
    with pytest.raises(DataDirError) as info:
        LmdbStorage(root)
    message = str(info.value)
    assert "\n" not in message
    return message


def test_a_foreign_directory_is_refused_untouched(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    assert "not an s2kit lite data directory (it holds notes.txt)" in _refused(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


def test_a_corrupt_data_file_is_refused_untouched(tmp_path: Path) -> None:
    (tmp_path / "data.mdb").write_bytes(os.urandom(64 * 1024))
    before = (tmp_path / "data.mdb").read_bytes()
    assert "corrupt or not an lmdb file" in _refused(tmp_path)
    assert (tmp_path / "data.mdb").read_bytes() == before


def test_another_programs_lmdb_is_refused_untouched(tmp_path: Path) -> None:
    env = lmdb.open(str(tmp_path), max_dbs=2)
    with env.begin(write=True) as txn:
        txn.put(b"k", b"v", db=env.open_db(b"theirs", txn=txn))
    env.close()
    before = _snapshot(tmp_path)
    assert "not s2kit lite's" in _refused(tmp_path)
    assert _snapshot(tmp_path)["data.mdb"] == before["data.mdb"]


def test_a_newer_format_is_refused(tmp_path: Path) -> None:
    LmdbStorage(tmp_path).close()
    env = lmdb.open(str(tmp_path), max_dbs=8)
    with env.begin(write=True) as txn:
        txn.put(b"version", b"99", db=env.open_db(b"meta", txn=txn))
    env.close()
    assert "newer s2kit (format version 99" in _refused(tmp_path)


def test_an_empty_data_file_from_a_first_start_that_crashed_is_initialized(
    tmp_path: Path,
) -> None:
    (tmp_path / "data.mdb").write_bytes(b"")
    storage = LmdbStorage(tmp_path)
    assert storage.statistics().records == 0
    storage.close()
    LmdbStorage(tmp_path).close()  # and it is lite's now


def test_a_second_storage_on_the_same_directory_is_refused(tmp_path: Path) -> None:
    first = LmdbStorage(tmp_path)
    try:
        assert f"in use by another lite process (pid {os.getpid()})" in _refused(tmp_path)
    finally:
        first.close()
    LmdbStorage(tmp_path).close()  # free again once the first one closed


async def test_a_second_process_refuses_to_start(tmp_path: Path) -> None:
    child = LiteChild(tmp_path / "data", free_port(), tmp_path / "lite.log")
    try:
        await child.start()
        assert child.proc is not None
        cmd = [sys.executable, "-m", "s2kit", "lite", "--port", "0"]
        second = await asyncio.to_thread(
            subprocess.run,
            [*cmd, "--data-dir", str(tmp_path / "data")],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert second.returncode == 1
        assert second.stderr == (
            f"s2kit lite: data directory {tmp_path / 'data'} is in use by another lite "
            f"process (pid {child.proc.pid})\n"
        )
        assert child.terminate() == 0
    finally:
        child.kill()


def test_the_cli_reports_a_foreign_directory(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "x").write_text("")
    assert main(["lite", "--port", "0", "--data-dir", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"s2kit lite: {tmp_path} is not an s2kit lite data directory")
    assert err.count("\n") == 1


# --- a full map, a full disk ----------------------------------------------------------------------


async def _fill(c: S2, stream: str, limit: int) -> tuple[list[int], ServerError]:
    """Append 32 KiB batches until one fails; returns the acked batch ends and the error."""
    ends: list[int] = []
    s = c.basin(BASIN).stream(stream)
    for i in range(limit):
        body = bytes([i % 256]) * 1024
        try:
            ack = await s.append(AppendInput(records=[Record(body=body)] * 32))
        except ServerError as exc:
            return ends, exc
        ends.append(ack.end.seq_num)
    raise AssertionError(f"{limit} batches and storage never failed")


async def _check_whole(c: S2, stream: str, ends: list[int]) -> None:
    """Exactly the acked batches are there: nothing of the failed one is visible."""
    s = c.basin(BASIN).stream(stream)
    tail = await s.check_tail()
    assert tail.seq_num == ends[-1]
    seen = 0
    while seen < tail.seq_num:
        batch = await s.read(start=SeqNum(seen))
        seen += len(batch.records)
    assert seen == tail.seq_num


async def test_a_full_map_fails_appends_whole_and_recovers(tmp_path: Path) -> None:
    size = 2 * 1024 * 1024
    storage = LmdbStorage(tmp_path / "data", map_size=size, max_map_size=size)
    async with running(tmp_path / "data", storage=storage) as (lite, c):
        await c.create_basin(BASIN)
        for name in ("filler", "main"):
            await c.basin(BASIN).create_stream(name)
        main = c.basin(BASIN).stream("main")
        first = [(await main.append(AppendInput(records=[Record(body=b"m")] * 5))).end.seq_num]
        filled, _ = await _fill(c, "filler", 200)
        ends, exc = await _fill(c, "main", 200)
        ends = first + ends
        assert (exc.status, exc.code) == (500, "storage")
        await _check_whole(c, "filler", filled)
        await _check_whole(c, "main", ends)
        # Space returns when a stream is deleted and its records removed.
        await c.basin(BASIN).delete_stream("filler")

        async def reclaimed() -> bool:
            return lmdb_of(lite).statistics().records == ends[-1]

        await eventually(reclaimed, what="the filler's records to be removed")
        ack = await main.append(AppendInput(records=[Record(body=b"after")]))
        assert ack.start.seq_num == ends[-1]


async def test_the_map_grows_when_it_fills(tmp_path: Path) -> None:
    storage = LmdbStorage(tmp_path / "data", map_size=256 * 1024, max_map_size=1 << 30)
    async with running(tmp_path / "data", storage=storage) as (_, c):
        await c.create_basin(BASIN)
        await c.basin(BASIN).create_stream("s")
        s = c.basin(BASIN).stream("s")
        for _ in range(40):
            await s.append(AppendInput(records=[Record(body=b"x" * 1024)] * 32))
        assert storage.statistics().map_size >= 1024 * 1024
    async with running(tmp_path / "data") as (_, c):
        assert (await c.basin(BASIN).stream("s").check_tail()).seq_num == 40 * 32


async def test_a_disk_that_cannot_grow_fails_appends_whole_and_recovers(tmp_path: Path) -> None:
    # RLIMIT_FSIZE makes every write past the data file's current size fail with EFBIG, as a
    # full disk fails them with ENOSPC (Python ignores SIGXFSZ, so the write just fails).
    data = tmp_path / "data"
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    async with running(data) as (_, c):
        await c.create_basin(BASIN)
        await c.basin(BASIN).create_stream("s")
        await c.basin(BASIN).stream("s").append(AppendInput(records=[Record(body=b"first")]))
        resource.setrlimit(resource.RLIMIT_FSIZE, ((data / "data.mdb").stat().st_size, hard))
        try:
            ends, exc = await _fill(c, "s", 400)
        finally:
            resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        assert (exc.status, exc.code) == (500, "storage")
        ends = [1, *ends]
        await _check_whole(c, "s", ends)
        ack = await c.basin(BASIN).stream("s").append(AppendInput(records=[Record(body=b"ok")]))
        assert ack.start.seq_num == ends[-1]
    async with running(data) as (_, c):  # and what was acked is all there after a restart
        await _check_whole(c, "s", [*ends, ends[-1] + 1])
