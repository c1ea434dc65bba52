"""Durable lite keeps its state across restarts (issue 5, acceptance 2): tails and records,
fencing tokens, trim points, configs, creation tokens, basin and stream deletion state.

Each test runs lite on a data directory, stops it, starts a new lite on the same directory and
checks what the first one was told, through the SDK or plain HTTP.
"""

from __future__ import annotations

import base64
import time
from typing import TYPE_CHECKING

import httpx
import pytest

from s2kit import (
    AppendInput,
    BasinConfig,
    CommandRecord,
    EncryptionAlgorithm,
    ProvisionResult,
    ReadLimit,
    Record,
    SeqNum,
    StorageClass,
    StreamConfig,
    StreamReconfiguration,
    TailOffset,
    Timestamp,
    Timestamping,
    TimestampingMode,
)
from s2kit.errors import FencingTokenMismatch, ServerError
from s2kit.server._lmdb import LmdbStorage

from ._proc import LiteChild, free_port
from ._util import BASIN, eventually, lmdb_of, running

if TYPE_CHECKING:
    from pathlib import Path

KEY = base64.b64encode(bytes(range(32))).decode()


async def test_records_and_tail_survive_a_restart(tmp_path: Path) -> None:
    batches = [
        [Record(body=b"a", headers=((b"k", b"v"), (b"k2", b"")), timestamp=1000)],
        [Record(body=b"", timestamp=2000), Record(body=bytes(range(256)) * 40, timestamp=2000)],
        [Record(body=f"r{i}".encode(), timestamp=3000 + i) for i in range(50)],
    ]
    async with running(tmp_path) as (_, c):
        await c.create_basin(BASIN)
        await c.basin(BASIN).create_stream("s")
        stream = c.basin(BASIN).stream("s")
        acks = [await stream.append(AppendInput(records=b)) for b in batches]
        before = await stream.read(start=SeqNum(0))
    async with running(tmp_path) as (_, c):
        stream = c.basin(BASIN).stream("s")
        assert await stream.check_tail() == acks[-1].tail
        after = await stream.read(start=SeqNum(0))
        assert after.records == before.records
        assert len(after.records) == 53
        assert after.records[0].headers == ((b"k", b"v"), (b"k2", b""))
        # The timestamp index and tail offsets work on the restored stream.
        by_ts = await stream.read(start=Timestamp(3010))
        assert by_ts.records[0].seq_num == 13
        last = await stream.read(start=TailOffset(2))
        assert [r.body for r in last.records] == [b"r48", b"r49"]
        # Appends continue the sequence, with timestamps never going backwards.
        ack = await stream.append(AppendInput(records=[Record(body=b"more", timestamp=5)]))
        assert ack.start.seq_num == 53
        assert ack.start.timestamp == 3049


async def test_fencing_token_survives_a_restart(tmp_path: Path) -> None:
    async with running(tmp_path) as (_, c):
        await c.create_basin(BASIN)
        await c.basin(BASIN).create_stream("s")
        stream = c.basin(BASIN).stream("s")
        await stream.append(AppendInput(records=[CommandRecord.fence("tok-1")]))
    async with running(tmp_path) as (_, c):
        stream = c.basin(BASIN).stream("s")
        with pytest.raises(FencingTokenMismatch) as info:
            await stream.append(AppendInput(records=[Record(body=b"x")], fencing_token="other"))
        assert info.value.expected == "tok-1"
        ack = await stream.append(AppendInput(records=[Record(body=b"x")], fencing_token="tok-1"))
        assert ack.start.seq_num == 1


async def test_configs_survive_a_restart(tmp_path: Path) -> None:
    basin_cfg = BasinConfig(
        default_stream_config=StreamConfig(
            storage_class=StorageClass.STANDARD,
            retention_policy=3600,
            timestamping=Timestamping(mode=TimestampingMode.ARRIVAL),
        ),
        create_stream_on_append=True,
    )
    async with running(tmp_path) as (_, c):
        await c.create_basin(BASIN, basin_cfg)
        basin = c.basin(BASIN)
        await basin.create_stream("inherits")
        await basin.create_stream(
            "own", StreamConfig(retention_policy="infinite", delete_on_empty_min_age_secs=600)
        )
        await basin.reconfigure_stream(
            "own", StreamReconfiguration(timestamping=Timestamping(uncapped=True))
        )
        want = {n: await basin.get_stream_config(n) for n in ("inherits", "own")}
        # A default stream config with no field set is kept as given
        # (docs/protocol.md#how-configs-are-stored).
        async with httpx.AsyncClient(base_url=c.endpoints.account) as h:
            r = await h.put(
                "/v1/basins/other-basin", json={"config": {"default_stream_config": {}}}
            )
            assert r.status_code == 201, r.text
    async with running(tmp_path) as (_, c):
        assert await c.get_basin_config(BASIN) == basin_cfg
        basin = c.basin(BASIN)
        assert {n: await basin.get_stream_config(n) for n in ("inherits", "own")} == want
        assert want["own"].timestamping == Timestamping(
            mode=TimestampingMode.ARRIVAL, uncapped=True
        )
        # Configs compare equal after the restart: ensuring them again changes nothing.
        assert (await c.ensure_basin(BASIN, basin_cfg))[1] is ProvisionResult.NOOP
        async with httpx.AsyncClient(base_url=c.endpoints.account) as h:
            r = await h.put(
                "/v1/basins/other-basin", json={"config": {"default_stream_config": {}}}
            )
            assert (r.status_code, r.headers["s2-provision-result"]) == (200, "noop")
        # The basin flag still auto-creates streams.
        ack = await basin.stream("auto").append(AppendInput(records=[Record(body=b"x")]))
        assert ack.end.seq_num == 1


async def test_creation_tokens_survive_a_restart(tmp_path: Path) -> None:
    token = {"s2-request-token": "create-once"}
    async with running(tmp_path) as (lite, _), httpx.AsyncClient(base_url=lite.url) as h:
        first = await h.post("/v1/basins", json={"basin": BASIN}, headers=token)
        assert first.status_code == 201
        s_first = await h.post(
            "/v1/streams", json={"stream": "s"}, headers={**token, "s2-basin": BASIN}
        )
        assert s_first.status_code == 201
    async with running(tmp_path) as (lite, _), httpx.AsyncClient(base_url=lite.url) as h:
        again = await h.post("/v1/basins", json={"basin": BASIN}, headers=token)
        assert (again.status_code, again.headers["s2-provision-result"]) == (201, "noop")
        assert again.json()["created_at"] == first.json()["created_at"]
        s_again = await h.post(
            "/v1/streams", json={"stream": "s"}, headers={**token, "s2-basin": BASIN}
        )
        assert (s_again.status_code, s_again.headers["s2-provision-result"]) == (201, "noop")
        assert s_again.json()["created_at"] == s_first.json()["created_at"]
        other = await h.post("/v1/basins", json={"basin": BASIN}, headers={"s2-request-token": "x"})
        assert other.status_code == 409


async def test_deletion_state_survives_a_restart(tmp_path: Path) -> None:
    slow = {"deletion_grace": 3600.0}
    async with running(tmp_path, **slow) as (_, c):
        await c.create_basin(BASIN)
        await c.create_basin("doomed-basin")
        for name in ("gone", "kept"):
            await c.basin(BASIN).create_stream(name)
            await c.basin(BASIN).stream(name).append(AppendInput(records=[Record(body=b"old")]))
        await c.basin(BASIN).delete_stream("gone")
        await c.delete_basin("doomed-basin")
    async with running(tmp_path, **slow) as (_, c):
        page = await c.basin(BASIN).list_streams()
        gone = next(s for s in page.items if s.name == "gone")
        assert gone.deleted_at is not None
        with pytest.raises(ServerError) as info:
            await c.basin(BASIN).stream("gone").append(AppendInput(records=[Record(body=b"x")]))
        assert info.value.code == "stream_deletion_pending"
        basins = {b.name: b for b in (await c.list_basins()).items}
        assert basins["doomed-basin"].deleted_at is not None
        with pytest.raises(ServerError) as info:
            await c.basin("doomed-basin").create_stream("new")
        assert info.value.code == "basin_deletion_pending"
    async with running(tmp_path) as (_, c):  # the quick grace lets the jobs finish

        async def finished() -> bool:
            names = [s.name for s in (await c.basin(BASIN).list_streams()).items]
            basins = [b.name for b in (await c.list_basins()).items]
            return names == ["kept"] and basins == [BASIN]

        await eventually(finished, what="deletions to finish")
        await c.basin(BASIN).create_stream("gone")  # the name is free, and the stream new
        assert (await c.basin(BASIN).stream("gone").check_tail()).seq_num == 0
        assert (await c.basin(BASIN).stream("kept").check_tail()).seq_num == 1


async def test_encrypted_records_survive_a_restart(tmp_path: Path) -> None:
    async with running(tmp_path) as (_, c):
        await c.create_basin(BASIN, BasinConfig(stream_cipher=EncryptionAlgorithm.AEGIS_256))
        await c.basin(BASIN).create_stream("secret")
        stream = c.basin(BASIN).stream("secret").with_encryption_key(KEY)
        await stream.append(AppendInput(records=[Record(body=b"plain", headers=((b"h", b"v"),))]))
    async with running(tmp_path) as (_, c):
        stream = c.basin(BASIN).stream("secret")
        batch = await stream.with_encryption_key(KEY).read(start=SeqNum(0))
        assert [(r.headers, r.body) for r in batch.records] == [(((b"h", b"v"),), b"plain")]
        with pytest.raises(ServerError) as info:
            await stream.with_encryption_key(base64.b64encode(b"k" * 32).decode()).read(
                start=SeqNum(0)
            )
        assert info.value.code == "decryption_failed"


async def test_long_stream_names_survive_a_restart(tmp_path: Path) -> None:
    # 512 bytes with a separator and multi-byte characters: longer than an lmdb key may be.
    name = "a/b-é" + "z" * 506
    assert len(name.encode()) == 512
    async with running(tmp_path) as (_, c):
        await c.create_basin(BASIN)
        await c.basin(BASIN).create_stream(name)
        await c.basin(BASIN).stream(name).append(AppendInput(records=[Record(body=b"x")]))
    async with running(tmp_path) as (_, c):
        assert [s.name for s in (await c.basin(BASIN).list_streams()).items] == [name]
        batch = await c.basin(BASIN).stream(name).read(start=SeqNum(0))
        assert [r.body for r in batch.records] == [b"x"]


async def test_a_dormant_stream_wakes_with_its_durable_state(tmp_path: Path) -> None:
    async with running(tmp_path) as (lite, c):
        await c.create_basin(BASIN)
        await c.basin(BASIN).create_stream("s")
        stream = c.basin(BASIN).stream("s")
        await stream.append(AppendInput(records=[CommandRecord.fence("f"), Record(body=b"1")]))
        lite.backend.tick(time.monotonic() + 3600)  # long idle: the owner goes dormant
        assert (BASIN, "s") not in lite.backend.owners
        with pytest.raises(FencingTokenMismatch):
            await stream.append(AppendInput(records=[Record(body=b"x")], fencing_token="g"))
        ack = await stream.append(AppendInput(records=[Record(body=b"2")], fencing_token="f"))
        assert ack.start.seq_num == 2


async def test_provisioning_is_durable_before_the_response(tmp_path: Path) -> None:
    # Answers that assert existence wait for the metadata to be durable: a SIGKILL
    # right after them loses nothing.
    # A long flush interval: without the wait, these rows would still be pending at the kill.
    child = LiteChild(
        tmp_path / "data", free_port(), tmp_path / "lite.log", "--flush-interval", "500"
    )
    try:
        await child.start()
        async with httpx.AsyncClient(base_url=child.url) as h:
            r = await h.post("/v1/basins", json={"basin": BASIN})
            assert r.status_code == 201
            r = await h.put(
                "/v1/streams/s", json={"retention_policy": {"age": 77}}, headers={"s2-basin": BASIN}
            )
            assert r.status_code == 201
            r = await h.patch("/v1/basins/" + BASIN, json={"create_stream_on_read": True})
            assert r.status_code == 200
            r = await h.get("/v1/streams/auto/records/tail", headers={"s2-basin": BASIN})
            assert r.status_code == 200
        child.kill()
        await child.start()
        async with httpx.AsyncClient(base_url=child.url) as h:
            r = await h.get("/v1/streams", headers={"s2-basin": BASIN})
            assert [s["name"] for s in r.json()["streams"]] == ["auto", "s"]
            r = await h.get("/v1/streams/s", headers={"s2-basin": BASIN})
            assert r.json()["retention_policy"] == {"age": 77}
            r = await h.get("/v1/basins/" + BASIN)
            assert r.json()["create_stream_on_read"] is True
        assert child.terminate() == 0
    finally:
        child.kill()


class _DiesBeforeDeleting(LmdbStorage):
    """Storage whose background removal of trimmed records never runs, as when lite is
    killed between a trim taking effect and its records being removed (with many records
    the removal takes many write transactions, so a kill lands there easily)."""

    def _drop_below(self, sid: int, cut: int) -> None:
        self._busy.discard(sid)


async def test_a_visible_trim_stays_visible_across_a_restart(tmp_path: Path) -> None:
    # Once a read has seen a trim take effect, it must hold for good. The second lite's first
    # background pass comes late (60 s), so only what it reads at start can hold it.
    data = tmp_path / "data"
    async with running(data, storage=_DiesBeforeDeleting(data)) as (lite, c):
        await c.create_basin(BASIN)
        await c.basin(BASIN).create_stream("s")
        stream = c.basin(BASIN).stream("s")
        for i in range(10):
            batch = [Record(body=b"%d-%d" % (i, j), timestamp=1000 + i) for j in range(100)]
            await stream.append(AppendInput(records=batch))
        await stream.append(AppendInput(records=[CommandRecord.trim(900)]))

        async def trimmed() -> bool:
            batch = await stream.read(start=SeqNum(0), limit=ReadLimit(count=1))
            return batch.records[0].seq_num == 900

        await eventually(trimmed, what="the trim to take effect")
        assert lmdb_of(lite).statistics().records == 1001  # none removed yet
    async with running(data, background_interval=60.0) as (_, c):
        stream = c.basin(BASIN).stream("s")
        first = await stream.read(start=SeqNum(0), limit=ReadLimit(count=1))
        assert first.records[0].seq_num == 900
        by_ts = await stream.read(start=Timestamp(0), limit=ReadLimit(count=1))
        assert by_ts.records[0].seq_num == 900
