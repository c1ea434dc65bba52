"""What a newcomer meets first: ``dir``/``help`` show the API, the official SDK's spellings
work, names and sizes are checked with messages that say the limit, and the test fixture says
which extra it needs."""

from __future__ import annotations

import base64
import pydoc
import subprocess
import sys
import textwrap
from typing import TYPE_CHECKING

import pytest

import s2kit
from conftest import unique
from s2kit import AppendInput, BasinConfig, EncryptionAlgorithm, Record, SeqNum
from s2kit.errors import UsageError

if TYPE_CHECKING:
    from pathlib import Path

    from conftest import Endpoint

MIB = 1024 * 1024


def test_dir_and_help_show_the_exports() -> None:
    assert set(s2kit.__all__) <= set(dir(s2kit))
    text = pydoc.render_doc(s2kit, renderer=pydoc.plaintext)
    for name in ("class S2(", "class Endpoints(", "class ReadSession(", "class StreamConfig("):
        assert name in text, name


# The official SDK's names that s2kit accepts too, with their s2kit originals; docs list these.
OFFICIAL_ALIASES = {
    ("S2", "close"): "aclose",
    ("S2", "list_all_basins"): "iter_basins",
    ("S2", "__getitem__"): "basin",
    ("Basin", "list_all_streams"): "iter_streams",
    ("Basin", "__getitem__"): "stream",
    ("ReadSession", "close"): "aclose",
    ("Endpoints", "default"): "Endpoints()",
}


def test_the_official_names_exist_where_s2kit_accepts_them() -> None:
    import s2_sdk

    official = {"S2": s2_sdk.S2, "Basin": s2_sdk.S2Basin, "ReadSession": s2_sdk.ReadSession}
    official["Endpoints"] = s2_sdk.Endpoints
    for (cls, name), _ in OFFICIAL_ALIASES.items():
        assert hasattr(official[cls], name), (cls, name)  # the spelling is the official one
        assert hasattr(getattr(s2kit, cls), name), (cls, name)


async def test_official_spellings_work(endpoint: Endpoint) -> None:
    s2 = endpoint.client()
    name = unique("aliases")
    await s2.create_basin(name)
    gone = unique("aliases")
    await s2.create_basin(gone)
    await s2.delete_basin(gone)
    basin = s2[name]
    assert basin.name == name
    for stream in ("a", "b", "c"):
        await basin.create_stream(stream)
    await basin.delete_stream("b")

    streams = [s.name async for s in basin.list_all_streams()]
    assert streams == ["a", "c"]  # the official default leaves out streams being deleted
    assert [s.name async for s in basin.list_all_streams(include_deleted=True)] == ["a", "b", "c"]
    assert [s.name async for s in basin.list_all_streams(start_after="a")] == ["c"]
    listed = [b.name async for b in s2.list_all_basins(prefix="aliases-")]
    assert name in listed
    assert gone not in listed
    assert gone in [b.name async for b in s2.list_all_basins(include_deleted=True)]

    stream = s2[name]["a"]
    await stream.append(AppendInput(records=(Record(body=b"x"),)))
    session = stream.read_session(SeqNum(0), wait=0)
    assert [r.body async for batch in session for r in batch.records] == [b"x"]
    await session.close()
    await s2.close()


async def test_raw_key_bytes_are_base64_encoded_as_the_official_sdk_does(
    endpoint: Endpoint,
) -> None:
    key = bytes(range(32))
    async with endpoint.client() as s2:
        name = unique("raw-key")
        await s2.create_basin(name, BasinConfig(stream_cipher=EncryptionAlgorithm.AEGIS_256))
        await s2.basin(name).create_stream("s")
        by_bytes = s2.basin(name).stream("s", encryption_key=key)
        await by_bytes.append(AppendInput(records=(Record(body=b"secret"),)))
        by_text = s2.basin(name).stream("s").with_encryption_key(base64.b64encode(key).decode())
        assert [r.body for r in (await by_text.read()).records] == [b"secret"]


async def test_stream_names_are_checked_before_a_request(endpoint: Endpoint) -> None:
    async with endpoint.client() as s2:
        name = unique("names")
        await s2.create_basin(name)
        basin = s2.basin(name)
        with pytest.raises(UsageError) as exc:
            await basin.create_stream("n" * 600)
        assert str(exc.value) == "stream name must be 1-512 bytes of UTF-8, got 600 bytes"
        with pytest.raises(UsageError, match="got 0 bytes"):
            basin.stream("")
        with pytest.raises(UsageError, match=r"must not be '\.\.'"):
            await basin.get_stream_config("..")
        await basin.create_stream("é" * 256)  # 512 bytes: the limit is in bytes, inclusive


async def test_record_size_messages_say_at_most_one_mib(endpoint: Endpoint) -> None:
    async with endpoint.client() as s2:
        name = unique("sizes")
        await s2.create_basin(name)
        await s2.basin(name).create_stream("s")
        stream = s2.basin(name).stream("s")
        exactly = Record(body=b"x" * (MIB - 8))  # 8 bytes of overhead: 1 MiB metered
        ack = await stream.append(AppendInput(records=(exactly,)))
        assert ack.end.seq_num == 1
        with pytest.raises(UsageError) as exc:
            await stream.append(AppendInput(records=(Record(body=b"x" * (MIB - 7)),)))
        assert str(exc.value) == (
            "a record's metered size must be at most 1 MiB (1048576 bytes), got 1048577 bytes"
        )
        half = Record(body=b"x" * (MIB // 2))
        async with stream.append_session() as session:
            with pytest.raises(UsageError) as exc:
                await session.submit(AppendInput(records=(half, half)))
        assert str(exc.value) == (
            "a batch's metered size must be at most 1 MiB (1048576 bytes), got 1048592 bytes"
        )


def test_the_fixture_without_the_lite_extra_names_the_extra(tmp_path: Path) -> None:
    (tmp_path / "conftest.py").write_text(
        "import sys\nsys.modules['cryptography'] = None  # as if `lite` were not installed\n"
    )
    (tmp_path / "test_uses_fixture.py").write_text(
        textwrap.dedent(
            """
            def test_it(s2kit_lite):
                pass
            """
        )
    )
    out = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=60,
    )
    assert out.returncode == 1, out.stdout
    assert (
        "ImportError: lite, which the s2kit_lite fixture and run_lite() start, needs the "
        "`lite` extra (cryptography is missing): pip install 's2kit[lite]'" in out.stdout
    ), out.stdout
