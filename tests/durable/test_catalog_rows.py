"""Catalog rows round-trip exactly (``server/_meta.py``), and a corrupt one stops start-up."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

import lmdb
import pytest
from hypothesis import given
from hypothesis import strategies as st

from s2kit import (
    BasinConfig,
    EncryptionAlgorithm,
    StorageClass,
    StreamConfig,
    Timestamping,
    TimestampingMode,
)
from s2kit.server import DataDirError, Lite
from s2kit.server._catalog import BasinMeta, StreamMeta
from s2kit.server._lmdb import LmdbStorage
from s2kit.server._meta import basin_row, basins_from_rows, row_key, stream_row

from ._util import BASIN, config, running

if TYPE_CHECKING:
    from pathlib import Path

times = st.datetimes(
    min_value=datetime(1971, 1, 1), max_value=datetime(2200, 1, 1), timezones=st.just(UTC)
)
timestamping = st.none() | st.builds(
    Timestamping,
    mode=st.none() | st.sampled_from(TimestampingMode),
    uncapped=st.none() | st.booleans(),
)
stream_configs = st.builds(
    StreamConfig,
    storage_class=st.none() | st.sampled_from(StorageClass),
    retention_policy=st.none() | st.just("infinite") | st.integers(1, 2**63),
    timestamping=timestamping,
    delete_on_empty_min_age_secs=st.none() | st.integers(0, 2**63),
)
basin_configs = st.builds(
    BasinConfig,
    default_stream_config=st.none() | stream_configs,
    stream_cipher=st.none() | st.sampled_from(EncryptionAlgorithm),
    create_stream_on_append=st.booleans(),
    create_stream_on_read=st.booleans(),
)
keys = st.none() | st.text(alphabet="0123456789abcdef", min_size=32, max_size=32)


@given(
    cfg=basin_configs,
    created=times,
    deleted=st.none() | times,
    key=keys,
    scfg=stream_configs,
    cipher=st.none() | st.sampled_from(EncryptionAlgorithm),
    name=st.text(min_size=1, max_size=40),
)
def test_rows_round_trip_exactly(
    cfg: BasinConfig,
    created: datetime,
    deleted: datetime | None,
    key: str | None,
    scfg: StreamConfig,
    cipher: EncryptionAlgorithm | None,
    name: str,
) -> None:
    b = BasinMeta(name=BASIN, config=cfg, created_at=created, deleted_at=deleted, creation_key=key)
    s = StreamMeta(
        basin=BASIN,
        name=name,
        config=scfg,
        cipher=cipher,
        created_at=created,
        deleted_at=deleted,
        creation_key=key,
    )
    rows = [(row_key((BASIN, None)), basin_row(b)), (row_key((BASIN, name)), stream_row(s))]
    [got] = basins_from_rows(rows)
    assert (got.name, got.config, got.created_at, got.deleted_at, got.creation_key) == (
        b.name,
        b.config,
        b.created_at,
        b.deleted_at,
        b.creation_key,
    )
    assert got.streams == {name: s}


async def test_a_corrupt_catalog_row_stops_start_up(tmp_path: Path) -> None:
    async with running(tmp_path) as (_, c):
        await c.create_basin(BASIN)
    env = lmdb.open(str(tmp_path), max_dbs=8)
    with env.begin(write=True) as txn:
        txn.put(row_key((BASIN, None)), b"{not json", db=env.open_db(b"catalog", txn=txn))
    env.close()
    with pytest.raises(DataDirError, match="corrupt catalog row"):
        Lite(config(tmp_path))
    LmdbStorage(tmp_path).close()  # the failed start released the directory
