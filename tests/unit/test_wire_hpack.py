"""The stateless HPACK encoder (s2kit/wire/_hpack.py): every block decodes, with hpack's own
decoder, to exactly the fields given, in order; credentials arrive never-indexed; the decoder's
dynamic table stays empty; a lowered table limit is honoured."""

from __future__ import annotations

from hpack import Decoder, HeaderTuple, NeverIndexedHeaderTuple
from hypothesis import given
from hypothesis import strategies as st

from s2kit.wire._hpack import StatelessEncoder, encode_field, encode_integer

_NAME = st.one_of(
    st.sampled_from(
        [b":path", b":method", b":status", b"content-type", b"content-length", b"accept",
         b"authorization", b"s2-basin", b"s2-encryption-key", b"user-agent", b"age"]
    ),
    st.binary(min_size=1, max_size=40).map(lambda b: bytes(97 + x % 26 for x in b)),
)  # fmt: skip
_VALUE = st.one_of(
    st.sampled_from([b"GET", b"POST", b"200", b"404", b"/", b"gzip, deflate", b""]),
    st.binary(max_size=300),
)
_BLOCK = st.lists(st.tuples(_NAME, _VALUE), max_size=20)


def test_integers_as_rfc_7541_appendix_c1() -> None:
    assert encode_integer(10, 5, 0) == b"\x0a"
    assert encode_integer(1337, 5, 0) == b"\x1f\x9a\x0a"
    assert encode_integer(42, 8, 0) == b"\x2a"
    assert encode_integer(127, 7, 0x80) == b"\xff\x00"


def test_static_matches_are_one_byte() -> None:
    assert encode_field(b":method", b"GET", False) == b"\x82"
    assert encode_field(b":status", b"200", False) == b"\x88"
    # A credential is never sent as an index, even if the table held it whole.
    assert encode_field(b"authorization", b"", True)[0] & 0xF0 == 0x10


@given(st.lists(_BLOCK, min_size=1, max_size=6))
def test_blocks_decode_to_the_fields_given(blocks: list[list[tuple[bytes, bytes]]]) -> None:
    encoder, decoder = StatelessEncoder(), Decoder()
    for block in blocks:
        decoded = decoder.decode(encoder.encode(block), raw=True)
        assert [(n, v) for n, v in decoded] == block
        for (name, _), field in zip(block, decoded, strict=True):
            sensitive = name in (b"authorization", b"s2-encryption-key")
            assert isinstance(field, NeverIndexedHeaderTuple) == sensitive
            assert isinstance(field, HeaderTuple)
        assert len(decoder.header_table.dynamic_entries) == 0


def test_never_indexed_tuples_stay_never_indexed() -> None:
    encoder, decoder = StatelessEncoder(), Decoder()
    block = [NeverIndexedHeaderTuple(b"x-secret", b"s3cr3t"), (b"x-plain", b"p")]
    decoded = decoder.decode(encoder.encode(block), raw=True)
    assert isinstance(decoded[0], NeverIndexedHeaderTuple)
    assert not isinstance(decoded[1], NeverIndexedHeaderTuple)


def test_a_lowered_table_limit_is_acknowledged() -> None:
    # A decoder whose limit went below its current size requires a size update first
    # (RFC 7541 §4.2); the encoder sends one after h2 assigns the new setting.
    encoder, decoder = StatelessEncoder(), Decoder()
    decoder.decode(encoder.encode([(b"a", b"1")]), raw=True)
    decoder.max_allowed_table_size = 0
    encoder.header_table_size = 0
    assert decoder.decode(encoder.encode([(b"b", b"2")]), raw=True) == [(b"b", b"2")]
    # Later blocks need no update and carry none.
    assert encoder.encode([(b":method", b"GET")]) == b"\x82"


def test_cache_is_bounded() -> None:
    encoder, decoder = StatelessEncoder(), Decoder()
    for i in range(10_000):
        block = [(b"content-length", str(i).encode())]
        assert decoder.decode(encoder.encode(block), raw=True) == block
    assert len(encoder._cache) <= 4096
