"""Encryption at rest: key parsing, the plaintext envelope, and both record ciphers."""

from __future__ import annotations

import base64
import struct

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from hypothesis import given
from hypothesis import strategies as st
from nacl.bindings import crypto_aead_aegis256_ABYTES, crypto_aead_aegis256_decrypt

from s2kit.server._crypto import (
    AES_GCM_MAX_SEQ_NUM,
    MAX_HEADERS,
    DecryptionFailed,
    RecordCipher,
    cipher_overhead,
    decode_envelope,
    encode_envelope,
    parse_encryption_key,
)
from s2kit.types import EncryptionAlgorithm

KEY = bytes(range(32))
OTHER_KEY = bytes(range(1, 33))
AAD = b"\x11" * 32
ALGORITHMS = list(EncryptionAlgorithm)
NONCE_SIZES = {EncryptionAlgorithm.AEGIS_256: 32, EncryptionAlgorithm.AES_256_GCM: 12}

headers_st = st.lists(st.tuples(st.binary(max_size=300), st.binary(max_size=300)), max_size=8)


# --- parse_encryption_key ---------------------------------------------------------------------


def test_key_parses() -> None:
    assert parse_encryption_key(base64.b64encode(KEY).decode()) == KEY


def test_key_whitespace_is_trimmed() -> None:
    assert parse_encryption_key(f" \t{base64.b64encode(KEY).decode()}\t ") == KEY


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("", "1-44 characters"),
        ("   ", "1-44 characters"),
        (base64.b64encode(KEY).decode() + "A", "1-44 characters"),  # 45 chars
        ("A" * 45, "1-44 characters"),
        (base64.b64encode(KEY).decode()[:-1], "not valid base64"),  # padding missing
        (base64.b64encode(KEY).decode()[:-2] + "*=", "not valid base64"),
        (base64.b64encode(KEY).decode()[:-2] + "é=", "not valid base64"),
        (base64.urlsafe_b64encode(b"\xff" * 32).decode(), "not valid base64"),  # - and _
        (base64.b64encode(KEY[:20]).decode() + " " + "A" * 10, "not valid base64"),
        (base64.b64encode(b"\x00" * 31).decode(), "32 bytes, got 31"),
        (base64.b64encode(b"\x00" * 33).decode(), "32 bytes, got 33"),
        ("AAAA", "32 bytes, got 3"),
        ("A" * 42 + "B=", "not canonical"),  # non-zero bits in the last symbol
    ],
)
def test_key_rejected(value: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_encryption_key(value)


@given(st.binary(min_size=32, max_size=32))
def test_key_round_trip(key: bytes) -> None:
    assert parse_encryption_key(base64.b64encode(key).decode()) == key


# --- envelope ---------------------------------------------------------------------------------


@given(headers_st, st.binary(max_size=1000))
def test_envelope_round_trip(headers: list[tuple[bytes, bytes]], body: bytes) -> None:
    data = encode_envelope(tuple(headers), body)
    assert decode_envelope(data) == (tuple(headers), body)


@given(headers_st, st.binary(max_size=100))
def test_envelope_every_truncation_is_rejected(
    headers: list[tuple[bytes, bytes]], body: bytes
) -> None:
    data = encode_envelope(tuple(headers), body)
    header_bytes = len(data) - len(body)
    for cut in range(header_bytes):
        with pytest.raises(ValueError, match=r"empty|truncated"):
            decode_envelope(data[:cut])


def test_envelope_layout() -> None:
    assert encode_envelope((), b"body") == b"\x00body"
    # One 1-byte count, names in 1 byte, values in 2 bytes: flags 0b10_01_01.
    data = encode_envelope(((b"k", b"v" * 300), (b"", b"")), b"!")
    assert data == b"\x25\x02\x01\x00" + struct.pack(">HH", 300, 0) + b"k" + b"v" * 300 + b"!"


def test_envelope_zero_width_fields() -> None:
    # Empty names and values store no length table at all.
    assert encode_envelope(((b"", b""), (b"", b"")), b"x") == b"\x01\x02x"
    assert decode_envelope(b"\x01\x02x") == (((b"", b""), (b"", b"")), b"x")


def test_envelope_many_headers_use_wide_count() -> None:
    headers = ((b"n", b"v"),) * 70_000
    data = encode_envelope(headers, b"")
    assert data[0] & 0x3 == 3
    assert decode_envelope(data) == (headers, b"")


def test_envelope_accepts_wider_than_needed_fields() -> None:
    data = b"\x3f" + struct.pack(">III", 1, 1, 2) + b"abc" + b"body"
    assert decode_envelope(data) == (((b"a", b"bc"),), b"body")


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "empty"),
        (b"\x40", "reserved bits"),
        (b"\x80body", "reserved bits"),
        (b"\x04", "fields but no headers"),
        (b"\x01\x00", "0 headers"),
        (b"\x03" + struct.pack(">I", MAX_HEADERS + 1), "16777216 headers"),
        (b"\x03\x00\x00", "header count"),
        (b"\x3f\x00\x00\x00\x05\x00\x00", "length table"),
        (b"\x15\x01\x05\x00abcd", "in its headers"),
    ],
)
def test_envelope_malformed(data: bytes, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        decode_envelope(data)


def test_envelope_too_many_headers() -> None:
    with pytest.raises(ValueError, match="too many"):
        encode_envelope(((b"", b""),) * (MAX_HEADERS + 1), b"")


# --- RecordCipher -----------------------------------------------------------------------------


def test_overhead() -> None:
    assert cipher_overhead(EncryptionAlgorithm.AEGIS_256) == 1 + 32 + 32
    assert cipher_overhead(EncryptionAlgorithm.AES_256_GCM) == 1 + 12 + 16


def test_aegis_tag_is_libsodiums() -> None:
    # libsodium's AEGIS-256 has a fixed 256-bit tag; cipher_overhead must follow it.
    assert crypto_aead_aegis256_ABYTES == 32


def test_aes_gcm_seq_num_limit() -> None:
    assert AES_GCM_MAX_SEQ_NUM == 2**32 - 1


@pytest.mark.parametrize("algorithm", ALGORITHMS)
@given(plaintext=st.binary(max_size=2000))
def test_cipher_round_trip(algorithm: EncryptionAlgorithm, plaintext: bytes) -> None:
    cipher = RecordCipher(algorithm, KEY, AAD)
    blob = cipher.encrypt(plaintext)
    assert len(blob) == len(plaintext) + cipher_overhead(algorithm)
    assert RecordCipher(algorithm, KEY, AAD).decrypt(blob) == plaintext


@given(headers_st, st.binary(max_size=500))
def test_envelope_through_cipher(headers: list[tuple[bytes, bytes]], body: bytes) -> None:
    cipher = RecordCipher(EncryptionAlgorithm.AEGIS_256, KEY, AAD)
    blob = cipher.encrypt(encode_envelope(tuple(headers), body))
    assert decode_envelope(cipher.decrypt(blob)) == (tuple(headers), body)


def test_layout_matches_the_primitives() -> None:
    aegis = RecordCipher(EncryptionAlgorithm.AEGIS_256, KEY, AAD).encrypt(b"hello")
    assert aegis[0] == 1
    assert crypto_aead_aegis256_decrypt(aegis[33:], AAD, aegis[1:33], KEY) == b"hello"
    gcm = RecordCipher(EncryptionAlgorithm.AES_256_GCM, KEY, AAD).encrypt(b"hello")
    assert gcm[0] == 2
    assert AESGCM(KEY).decrypt(gcm[1:13], gcm[13:], AAD) == b"hello"


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_nonces_are_fresh(algorithm: EncryptionAlgorithm) -> None:
    cipher = RecordCipher(algorithm, KEY, AAD)
    nonce_end = 1 + NONCE_SIZES[algorithm]
    nonces = {cipher.encrypt(b"same")[1:nonce_end] for _ in range(50)}
    assert len(nonces) == 50


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_ciphertext_hides_plaintext(algorithm: EncryptionAlgorithm) -> None:
    plaintext = b"attack at dawn " * 8
    blob = RecordCipher(algorithm, KEY, AAD).encrypt(plaintext)
    assert b"attack" not in blob
    assert b"dawn" not in blob


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_wrong_key(algorithm: EncryptionAlgorithm) -> None:
    blob = RecordCipher(algorithm, KEY, AAD).encrypt(b"secret")
    with pytest.raises(DecryptionFailed, match="record decryption failed"):
        RecordCipher(algorithm, OTHER_KEY, AAD).decrypt(blob)


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_aad_mismatch(algorithm: EncryptionAlgorithm) -> None:
    blob = RecordCipher(algorithm, KEY, AAD).encrypt(b"secret")
    with pytest.raises(DecryptionFailed, match="record decryption failed"):
        RecordCipher(algorithm, KEY, b"\x22" * 32).decrypt(blob)


@pytest.mark.parametrize("algorithm", ALGORITHMS)
@given(plaintext=st.binary(max_size=64), data=st.data())
def test_flipped_bit(algorithm: EncryptionAlgorithm, plaintext: bytes, data: st.DataObject) -> None:
    cipher = RecordCipher(algorithm, KEY, AAD)
    blob = bytearray(cipher.encrypt(plaintext))
    bit = data.draw(st.integers(0, len(blob) * 8 - 1))
    blob[bit // 8] ^= 1 << (bit % 8)
    with pytest.raises(DecryptionFailed):
        cipher.decrypt(bytes(blob))


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_truncation(algorithm: EncryptionAlgorithm) -> None:
    cipher = RecordCipher(algorithm, KEY, AAD)
    blob = cipher.encrypt(b"some plaintext")
    for cut in range(len(blob)):
        with pytest.raises(DecryptionFailed):
            cipher.decrypt(blob[:cut])


def test_wrong_format_id() -> None:
    aegis = RecordCipher(EncryptionAlgorithm.AEGIS_256, KEY, AAD)
    gcm = RecordCipher(EncryptionAlgorithm.AES_256_GCM, KEY, AAD)
    with pytest.raises(DecryptionFailed, match="format id 1, expected 2"):
        gcm.decrypt(aegis.encrypt(b"x"))
    with pytest.raises(DecryptionFailed, match="format id 2, expected 1"):
        aegis.decrypt(gcm.encrypt(b"x" * 40))
    with pytest.raises(DecryptionFailed, match="format id 3"):
        aegis.decrypt(b"\x03" + aegis.encrypt(b"x")[1:])


@pytest.mark.parametrize("size", [0, 16, 31, 33])
def test_bad_key_size(size: int) -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        RecordCipher(EncryptionAlgorithm.AEGIS_256, bytes(size), AAD)
