"""Client-keyed encryption through the official Python SDK (0.13.0 has ``Encryption`` and
``S2Basin.stream(..., encryption_key=...)``) against lite basins with a ``stream_cipher``.
Runs over h2c and TLS.
"""

from __future__ import annotations

import base64
import os

import pytest
import s2_sdk
from s2_sdk import (
    AppendInput,
    BasinConfig,
    CommandRecord,
    Encryption,
    ReadLimit,
    Record,
    S2ServerError,
    SeqNum,
)

from .conftest import drain, unique_basin


@pytest.fixture(params=[Encryption.AEGIS_256, Encryption.AES_256_GCM], ids=["aegis", "aesgcm"])
def cipher(request: pytest.FixtureRequest) -> Encryption:
    return request.param  # type: ignore[no-any-return]


@pytest.fixture
async def sealed(s2: s2_sdk.S2, cipher: Encryption) -> s2_sdk.S2Basin:
    name = unique_basin("sealed")
    await s2.create_basin(name, config=BasinConfig(stream_cipher=cipher))
    return s2.basin(name)


KEY = os.urandom(32)
RECORDS = [
    Record(body=b"secret-0", headers=[(b"h", b"v")]),
    Record(body=b""),
    Record(body=bytes(range(256)) * 8, headers=[(b"a", b""), (b"b", b"2")]),
]


async def test_stream_takes_the_basin_cipher(
    s2: s2_sdk.S2, sealed: s2_sdk.S2Basin, cipher: Encryption
) -> None:
    other = next(e for e in Encryption if e is not cipher)
    info = await sealed.create_stream("s")
    assert (await s2.get_basin_config(sealed.name)).stream_cipher is cipher

    # A new basin cipher applies to streams created afterwards only.
    await s2.reconfigure_basin(sealed.name, config=BasinConfig(stream_cipher=other))
    later = await sealed.create_stream("t")

    assert info.cipher is cipher
    assert later.cipher is other
    listed = [(s.name, s.cipher) async for s in sealed.list_all_streams()]
    assert listed == [("s", cipher), ("t", other)]


async def test_unary_round_trip(sealed: s2_sdk.S2Basin) -> None:
    await sealed.create_stream("s")
    stream = sealed.stream("s", encryption_key=KEY)

    ack = await stream.append(AppendInput(records=RECORDS))
    batch = await stream.read(start=SeqNum(0))

    assert (ack.start.seq_num, ack.end.seq_num) == (0, 3)
    assert [(r.body, r.headers) for r in batch.records] == [(r.body, r.headers) for r in RECORDS]
    # The same key given as base64 text works too; check-tail needs no key at all.
    as_text = sealed.stream("s", encryption_key=base64.b64encode(KEY).decode())
    assert [r.body for r in (await as_text.read(start=SeqNum(2))).records] == [RECORDS[2].body]
    assert await sealed.stream("s").check_tail() == ack.tail


async def test_sessions_round_trip(sealed: s2_sdk.S2Basin) -> None:
    await sealed.create_stream("s")
    stream = sealed.stream("s", encryption_key=KEY)

    async with stream.append_session() as session:
        tickets = [await session.submit(AppendInput(records=RECORDS)) for _ in range(20)]
        tickets.append(await session.submit(AppendInput(records=[CommandRecord.fence("f")])))
        acks = [await ticket for ticket in tickets]
    got = await drain(stream.read_session(start=SeqNum(0), limit=ReadLimit(count=61)))

    assert acks[-1].end.seq_num == 61
    assert [(r.body, r.headers) for r in got[:60]] == [(r.body, r.headers) for r in RECORDS] * 20
    assert (got[60].headers, got[60].body) == ([(b"", b"fence")], b"f")


async def test_missing_or_wrong_key(sealed: s2_sdk.S2Basin) -> None:
    await sealed.create_stream("s")
    await sealed.stream("s", encryption_key=KEY).append(AppendInput(records=RECORDS))
    keyless = sealed.stream("s")
    wrong = sealed.stream("s", encryption_key=os.urandom(32))

    for call in (
        keyless.append(AppendInput(records=[Record(body=b"x")])),
        keyless.read(start=SeqNum(0)),
    ):
        with pytest.raises(S2ServerError) as caught:
            await call
        assert (caught.value.status_code, caught.value.code) == (400, "bad_header")
        assert "encryption key" in caught.value.message
    with pytest.raises(S2ServerError) as session_caught:
        await drain(keyless.read_session(start=SeqNum(0)))
    assert (session_caught.value.status_code, session_caught.value.code) == (400, "bad_header")
    with pytest.raises(S2ServerError) as decrypt:
        await wrong.read(start=SeqNum(0))
    assert (decrypt.value.status_code, decrypt.value.code) == (400, "decryption_failed")
    assert (await keyless.check_tail()).seq_num == 3


async def test_plain_streams_ignore_a_key(basin: s2_sdk.S2Basin) -> None:
    await basin.create_stream("plain")
    keyed = basin.stream("plain", encryption_key=KEY)

    await keyed.append(AppendInput(records=[Record(body=b"clear")]))

    assert [r.body for r in (await basin.stream("plain").read(start=SeqNum(0))).records] == [
        b"clear"
    ]
