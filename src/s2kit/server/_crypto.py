"""Encryption at rest with client-supplied keys (docs/protocol.md#encryption).

Theory of operation
-------------------

A record on an encrypted stream is stored in two layers. The inner layer is the *envelope*, a
plaintext serialization of the record's headers and body (inspired by s2-lite's,
docs/protocol.md#lite-record-encoding)::

    flags      1 byte   bits 0-1 count width, 2-3 name-length width, 4-5 value-length width,
                        bits 6-7 zero. Width codes 0/1/2/3 mean 0/1/2/4 bytes, big-endian;
                        a zero-width field holds the value 0 for every entry.
    count      the number of headers H (0 when the count width is 0: no headers)
    name_len   H times, then value_len H times
    names and values, interleaved: name_0 value_0 name_1 value_1 ...
    body       everything that is left

All the lengths sit in one table so that one ``struct`` call packs or unpacks them. The encoder
picks the narrowest widths; the decoder accepts any width, and every input decodes one way.

The outer layer seals the envelope with the stream's cipher::

    format_id (1 byte) + nonce + ciphertext + tag

    AEGIS-256     format_id 1, 32-byte nonce, 32-byte tag
    AES-256-GCM   format_id 2, 12-byte nonce, 16-byte tag

AEGIS-256's tag is 32 bytes, not s2-lite's 16: libsodium, which PyNaCl binds, has only the
256-bit-tag variant, and the two variants compute unrelated tags. The stored format is internal,
so this costs 16 bytes per record and nothing else.

The stream's identity is the associated data, so that a ciphertext copied into another stream
fails to decrypt instead of reading as that stream's data.

Why random nonces: the server never stores the key. Each request brings its own key, appends with
a different key are accepted, several writers share a stream, and a deleted stream can be
recreated with its seq_nums starting again at 0. A nonce derived from the seq_num could therefore
meet the same key twice, which breaks confidentiality for both ciphers (and, for GCM, exposes the
authentication key, so forgeries follow). So each record draws a fresh nonce from ``os.urandom``.

AEGIS-256 takes a 256-bit nonce, so random nonces never collide in practice. AES-256-GCM takes 96
bits; NIST SP 800-38D allows at most 2^32 random-nonce encryptions under one key. The server
cannot count per key, so it bounds each stream: an append to an AES-256-GCM stream that would
seal a record with seq_num above :data:`AES_GCM_MAX_SEQ_NUM` is rejected with 422 ``invalid``.
Command records are never sealed, so they do not count (as in s2-lite).
(A client that reuses one key across many streams can still exceed the bound in aggregate;
AEGIS-256 is the cipher to choose for that.)
"""

from __future__ import annotations

import binascii
import itertools
import os
import struct

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from nacl.bindings import crypto_aead_aegis256_decrypt, crypto_aead_aegis256_encrypt
from nacl.exceptions import CryptoError

from s2kit.types import EncryptionAlgorithm, Header

__all__ = [
    "AES_GCM_MAX_SEQ_NUM",
    "DecryptionFailed",
    "KEY_SIZE",
    "MAX_HEADERS",
    "RecordCipher",
    "cipher_overhead",
    "decode_envelope",
    "encode_envelope",
    "parse_encryption_key",
]

KEY_SIZE = 32
"""Key length for both ciphers, in bytes."""
AES_GCM_MAX_SEQ_NUM = 2**32 - 1
"""The highest seq_num an AES-256-GCM stream may hold (random 96-bit nonces, see above)."""
MAX_HEADERS = 2**24 - 1
"""The most headers one envelope may carry (docs/protocol.md#names-and-limits)."""

_MAX_KEY_CHARS = 44  # base64 of 32 bytes, padding included
_FORMAT_IDS = {EncryptionAlgorithm.AEGIS_256: 1, EncryptionAlgorithm.AES_256_GCM: 2}
_NONCE_SIZES = {EncryptionAlgorithm.AEGIS_256: 32, EncryptionAlgorithm.AES_256_GCM: 12}
_TAG_SIZES = {EncryptionAlgorithm.AEGIS_256: 32, EncryptionAlgorithm.AES_256_GCM: 16}

# Width code -> struct format character; code 0 stores nothing.
_WIDTHS = (0, 1, 2, 4)
_WIDTH_CHARS = ("", "B", "H", "I")
_LIMIT_32 = 2**32


class DecryptionFailed(Exception):
    """A blob could not be decrypted: wrong key, wrong stream, tampering, truncation or format."""


def parse_encryption_key(value: str) -> bytes:
    """Parse an ``s2-encryption-key`` header value.

    Args:
        value: the header value; surrounding whitespace is ignored.

    Returns:
        The 32-byte key.

    Raises:
        ValueError: the trimmed value is empty or longer than 44 characters, is not strict
            standard base64 (alphabet, padding, zero trailing bits), or does not decode to exactly
            32 bytes. The caller answers 400 ``bad_header``.
    """
    text = value.strip()
    if not 1 <= len(text) <= _MAX_KEY_CHARS:
        raise ValueError(f"encryption key must be 1-{_MAX_KEY_CHARS} characters, got {len(text)}")
    try:
        key = binascii.a2b_base64(text, strict_mode=True)
    except ValueError as exc:  # binascii.Error, or non-ASCII text
        raise ValueError(f"encryption key is not valid base64: {exc}") from exc
    if len(key) != KEY_SIZE:
        raise ValueError(f"encryption key must decode to {KEY_SIZE} bytes, got {len(key)}")
    # a2b_base64 ignores non-zero bits in the last symbol; the one canonical form is required.
    if binascii.b2a_base64(key, newline=False).decode("ascii") != text:
        raise ValueError("encryption key is not canonical base64")
    return key


def _width_code(largest: int) -> int:
    if largest == 0:
        return 0
    if largest < 0x100:
        return 1
    if largest < 0x10000:
        return 2
    if largest < _LIMIT_32:
        return 3
    raise ValueError(f"header field of {largest} bytes is too long (limit 2^32 - 1)")


def encode_envelope(headers: tuple[Header, ...], body: bytes) -> bytes:
    """Serialize a record's headers and body into one plaintext envelope.

    Args:
        headers: the (name, value) pairs, in order.
        body: the payload.

    Returns:
        The envelope, for :func:`decode_envelope` or :meth:`RecordCipher.encrypt`.

    Raises:
        ValueError: more than :data:`MAX_HEADERS` headers, or a name or value of 2^32 bytes or
            more.
    """
    count = len(headers)
    if count == 0:
        return b"\x00" + body
    if count > MAX_HEADERS:
        raise ValueError(f"{count} headers is too many (limit {MAX_HEADERS})")
    name_lens = [len(name) for name, _ in headers]
    value_lens = [len(value) for _, value in headers]
    name_code = _width_code(max(name_lens))
    value_code = _width_code(max(value_lens))
    count_code = _width_code(count)
    fmt = (
        ">B"
        + _WIDTH_CHARS[count_code]
        + _WIDTH_CHARS[name_code] * count
        + _WIDTH_CHARS[value_code] * count
    )
    lengths = (name_lens if name_code else []) + (value_lens if value_code else [])
    flags = count_code | name_code << 2 | value_code << 4
    prefix = struct.pack(fmt, flags, count, *lengths)
    return b"".join((prefix, *itertools.chain.from_iterable(headers), body))


def decode_envelope(data: bytes) -> tuple[tuple[Header, ...], bytes]:
    """Parse an envelope made by :func:`encode_envelope`.

    Args:
        data: the envelope.

    Returns:
        ``(headers, body)``.

    Raises:
        ValueError: the envelope is empty, truncated, has reserved flag bits set, declares
            header fields without headers, or declares more than :data:`MAX_HEADERS` headers.
    """
    if not data:
        raise ValueError("envelope is empty")
    flags = data[0]
    if flags & 0xC0:
        raise ValueError(f"envelope flags {flags:#04x} set reserved bits")
    count_code, name_code, value_code = flags & 0x3, flags >> 2 & 0x3, flags >> 4 & 0x3
    if not count_code:
        if flags:
            raise ValueError("envelope declares header fields but no headers")
        return (), data[1:]
    pos = 1 + _WIDTHS[count_code]
    if len(data) < pos:
        raise ValueError("envelope is truncated in its header count")
    (count,) = struct.unpack_from(">" + _WIDTH_CHARS[count_code], data, 1)
    if not 0 < count <= MAX_HEADERS:
        raise ValueError(f"envelope declares {count} headers (must be 1-{MAX_HEADERS})")
    # Checked before the format is built, so a corrupt count cannot make a huge one.
    if count * (_WIDTHS[name_code] + _WIDTHS[value_code]) > len(data) - pos:
        raise ValueError("envelope is truncated in its length table")
    name_char, value_char = _WIDTH_CHARS[name_code], _WIDTH_CHARS[value_code]
    table = ">" + name_char * count + value_char * count
    lengths = struct.unpack_from(table, data, pos)
    pos += struct.calcsize(table)
    if sum(lengths) > len(data) - pos:
        raise ValueError("envelope is truncated in its headers")
    name_lens = lengths[:count] if name_code else (0,) * count
    value_lens = lengths[-count:] if value_code else (0,) * count
    headers: list[Header] = []
    for name_len, value_len in zip(name_lens, value_lens, strict=True):
        name_end = pos + name_len
        value_end = name_end + value_len
        headers.append((data[pos:name_end], data[name_end:value_end]))
        pos = value_end
    return tuple(headers), data[pos:]


def cipher_overhead(algorithm: EncryptionAlgorithm) -> int:
    """Bytes :meth:`RecordCipher.encrypt` adds to a plaintext: format id, nonce and tag."""
    return 1 + _NONCE_SIZES[algorithm] + _TAG_SIZES[algorithm]


class RecordCipher:
    """Seals and opens envelopes for one stream under one key.

    Args:
        algorithm: the stream's cipher.
        key: the 32-byte key, as from :func:`parse_encryption_key`.
        aad: the stream's identity, bound to every ciphertext as associated data.

    Raises:
        ValueError: ``key`` is not 32 bytes.
    """

    __slots__ = ("_aad", "_aesgcm", "_algorithm", "_key", "_min_size", "_nonce_size", "_prefix")

    def __init__(self, algorithm: EncryptionAlgorithm, key: bytes, aad: bytes) -> None:
        if len(key) != KEY_SIZE:
            raise ValueError(f"encryption key must be {KEY_SIZE} bytes, got {len(key)}")
        self._algorithm = algorithm
        self._key = bytes(key)
        self._aad = bytes(aad)
        self._prefix = bytes((_FORMAT_IDS[algorithm],))
        self._nonce_size = _NONCE_SIZES[algorithm]
        self._min_size = cipher_overhead(algorithm)
        # Built once: AESGCM validates and copies the key on construction.
        self._aesgcm = AESGCM(self._key) if algorithm is EncryptionAlgorithm.AES_256_GCM else None

    @property
    def algorithm(self) -> EncryptionAlgorithm:
        """The cipher."""
        return self._algorithm

    def encrypt(self, plaintext: bytes) -> bytes:
        """Seal ``plaintext`` under a fresh random nonce.

        Returns:
            ``format_id + nonce + ciphertext + tag``.
        """
        nonce = os.urandom(self._nonce_size)
        if self._aesgcm is not None:
            sealed = self._aesgcm.encrypt(nonce, plaintext, self._aad)
        else:
            sealed = crypto_aead_aegis256_encrypt(plaintext, self._aad, nonce, self._key)
        return b"".join((self._prefix, nonce, sealed))

    def decrypt(self, blob: bytes) -> bytes:
        """Open a blob made by :meth:`encrypt` with the same algorithm, key and aad.

        Returns:
            The plaintext.

        Raises:
            DecryptionFailed: the blob is too short, has another format id, or fails
                authentication (wrong key, another stream's aad, or any modified byte).
        """
        nonce_end = 1 + self._nonce_size
        # Checked up front: libsodium fails with a bare ValueError on a short ciphertext.
        if len(blob) < self._min_size:
            raise DecryptionFailed(f"encrypted record is truncated ({len(blob)} bytes)")
        if blob[0] != self._prefix[0]:
            raise DecryptionFailed(
                f"encrypted record has format id {blob[0]}, expected {self._prefix[0]} "
                f"({self._algorithm})"
            )
        nonce = blob[1:nonce_end]
        try:
            if self._aesgcm is not None:
                return self._aesgcm.decrypt(nonce, blob[nonce_end:], self._aad)
            return crypto_aead_aegis256_decrypt(blob[nonce_end:], self._aad, nonce, self._key)
        except (InvalidTag, CryptoError) as exc:
            raise DecryptionFailed("record decryption failed") from exc
