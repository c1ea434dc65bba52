"""Compression of S2S frame payloads and HTTP bodies (docs/protocol.md#s2s-compression).

Two algorithms, each in its standard container: zstd as one RFC 8878 frame and gzip as one RFC
1952 member (never raw deflate or zlib). The same codec serves S2S frames, where the flag's CC
bits name the algorithm, and HTTP bodies, where ``Content-Encoding`` does.

Decompression never trusts the sender with memory. Every call takes ``max_size`` and fails with
:class:`DecompressionError` before allocating much more than that, so a small "bomb" cannot
exhaust the process:

* gzip uses ``zlib.decompressobj`` with ``max_length``.
* zstd checks the content size the frame header declares, then lets zstd decompress in one shot
  into exactly that much memory. A frame that declares no size (streaming encoders omit it) is
  decompressed into a buffer of ``max_size + 1`` bytes; because the one-shot call ignores bytes
  after such a frame, a second, streaming pass (now known to be small) finds the frame's end.
  The library's bounded streaming reader is not used: it ends silently on a truncated frame.

Exactly one frame or member is accepted, and anything after it is an error. The RFCs allow
several, but no S2 sender writes them, and finding each boundary costs a copy of the remaining
input per frame in both libraries: quadratic time on a body of many tiny frames.
"""

from __future__ import annotations

import enum
import threading
import zlib
from typing import TypeAlias

import zstandard

__all__ = [
    "BytesLike",
    "Compression",
    "DecompressionError",
    "UnsupportedEncodingError",
    "compress",
    "compress_body",
    "decompress",
    "decompress_body",
]

BytesLike: TypeAlias = bytes | bytearray | memoryview
"""Anything the codecs read from: they only need the buffer protocol."""


class Compression(enum.IntEnum):
    """A compression algorithm. The value is its S2S ``CC`` code (docs/protocol.md#s2s-framing)."""

    NONE = 0
    ZSTD = 1
    GZIP = 2


class DecompressionError(ValueError):
    """Compressed data is corrupt or truncated, or decompresses to more than allowed."""


class UnsupportedEncodingError(ValueError):
    """A ``Content-Encoding`` other than ``gzip``, ``zstd`` or ``identity``."""


class _ZstdContexts(threading.local):
    # Creating a zstd context costs ~20 µs, reusing one ~1 µs; but a context must not be used by
    # two threads at once (python-zstandard docs), so each thread gets its own pair.
    def __init__(self) -> None:
        self.cctx = zstandard.ZstdCompressor()
        self.dctx = zstandard.ZstdDecompressor()


_zstd = _ZstdContexts()

# zlib's wbits 16 + 15: a gzip (RFC 1952) wrapper around a 32 KiB-window deflate stream.
_GZIP_WBITS = 31
_GZIP_LEVEL = 6


# Content-Encoding tokens (RFC 9110 §8.4.1); x-gzip is the legacy alias RFC 9110 §8.4.1.3 keeps.
_BODY_CODINGS = {
    "identity": Compression.NONE,
    "": Compression.NONE,
    "gzip": Compression.GZIP,
    "x-gzip": Compression.GZIP,
    "zstd": Compression.ZSTD,
}


def compress(data: BytesLike, compression: Compression) -> bytes:
    """Compress ``data`` with ``compression`` into its standard container.

    Args:
        data: the bytes to compress.
        compression: the algorithm; ``NONE`` returns the data unchanged (as ``bytes``).

    Returns:
        One zstd frame (with its content size), one gzip member, or the data itself.

    Raises:
        ValueError: ``compression`` is not a known algorithm.
    """
    if compression == Compression.ZSTD:
        out: bytes = _zstd.cctx.compress(data)
        return out
    if compression == Compression.GZIP:
        return zlib.compress(data, _GZIP_LEVEL, _GZIP_WBITS)
    if compression == Compression.NONE:
        return bytes(data)
    raise ValueError(f"unknown compression {compression!r}")


def decompress(data: BytesLike, compression: Compression, *, max_size: int) -> bytes:
    """Decompress ``data``, refusing output longer than ``max_size`` bytes.

    The data must be exactly one zstd frame or one gzip member (see the module docstring).

    Args:
        data: the compressed bytes.
        compression: the algorithm; ``NONE`` returns the data unchanged (and unchecked).
        max_size: the largest acceptable decompressed size.

    Returns:
        The decompressed bytes.

    Raises:
        DecompressionError: the data is corrupt or truncated, has bytes after its frame or
            member, or decompresses to more than ``max_size`` bytes.
        ValueError: ``compression`` is not a known algorithm.
    """
    if compression == Compression.ZSTD:
        return _unzstd(data, max_size)
    if compression == Compression.GZIP:
        return _gunzip(data, max_size)
    if compression == Compression.NONE:
        return bytes(data)
    raise ValueError(f"unknown compression {compression!r}")


def _too_large(algorithm: str, max_size: int) -> DecompressionError:
    return DecompressionError(f"{algorithm} data decompresses to more than {max_size} bytes")


def _gunzip(data: BytesLike, max_size: int) -> bytes:
    decoder = zlib.decompressobj(_GZIP_WBITS)
    try:
        # max_length=0 would mean "unlimited", hence the + 1 (which also detects overflow).
        out = decoder.decompress(data, max_size + 1)
    except zlib.error as exc:
        raise DecompressionError(f"corrupt gzip data: {exc}") from exc
    if len(out) > max_size:
        raise _too_large("gzip", max_size)
    if not decoder.eof:
        raise DecompressionError("truncated gzip data")
    if decoder.unused_data:
        raise DecompressionError("trailing bytes after the gzip member")
    return out


def _unzstd(data: BytesLike, max_size: int) -> bytes:
    dctx = _zstd.dctx
    try:
        declared: int = zstandard.frame_content_size(data)
    except zstandard.ZstdError as exc:
        raise DecompressionError(f"corrupt or truncated zstd frame header: {exc}") from exc
    if declared > max_size:
        raise _too_large("zstd", max_size)
    if declared > 0:
        # The common case (every S2 sender declares the size): zstd allocates exactly the
        # declared size and rejects truncation, a lying size and trailing bytes in one call.
        try:
            out: bytes = dctx.decompress(data, allow_extra_data=False)
        except zstandard.ZstdError as exc:
            raise DecompressionError(f"corrupt zstd data: {exc}") from exc
        return out
    # No declared size (or 0, for which zstd skips the blocks entirely). First a bounded
    # decompression: an output buffer of max_size + 1 bytes...
    try:
        out = dctx.decompress(data, max_output_size=max_size + 1)
    except zstandard.ZstdError as exc:
        raise DecompressionError(
            f"zstd data is corrupt or decompresses to more than {max_size} bytes: {exc}"
        ) from exc
    if len(out) > max_size:
        raise _too_large("zstd", max_size)
    # ...then, now that the output is known to be small, a streaming pass to see where the frame
    # ends: the one-shot call ignores trailing bytes after a frame of unknown size.
    decoder = dctx.decompressobj()
    try:
        decoder.decompress(data)
    except zstandard.ZstdError as exc:
        raise DecompressionError(f"corrupt zstd data: {exc}") from exc
    if not decoder.eof:
        # Only reachable for a frame that declares size 0, whose blocks the first pass skipped.
        raise DecompressionError("truncated zstd data")
    if decoder.unused_data:
        raise DecompressionError("trailing bytes after the zstd frame")
    return out


def _body_coding(content_encoding: str) -> Compression:
    try:
        return _BODY_CODINGS[content_encoding.strip().lower()]
    except KeyError:
        raise UnsupportedEncodingError(
            f"unsupported content-encoding {content_encoding!r} (use gzip, zstd or identity)"
        ) from None


def compress_body(data: BytesLike, content_encoding: str) -> bytes:
    """Compress an HTTP body for ``Content-Encoding: content_encoding``.

    Args:
        data: the body.
        content_encoding: ``gzip`` (or ``x-gzip``), ``zstd``, ``identity`` or empty; case and
            surrounding whitespace are ignored.

    Returns:
        The encoded body.

    Raises:
        UnsupportedEncodingError: any other coding, including a list of codings.
    """
    return compress(data, _body_coding(content_encoding))


def decompress_body(data: BytesLike, content_encoding: str, max_size: int) -> bytes:
    """Decode an HTTP body sent with ``Content-Encoding: content_encoding``.

    Args:
        data: the encoded body.
        content_encoding: as for :func:`compress_body`.
        max_size: the largest acceptable decoded size (not checked for ``identity``).

    Returns:
        The decoded body.

    Raises:
        UnsupportedEncodingError: the coding is not gzip, zstd or identity.
        DecompressionError: the body is corrupt, truncated or larger than ``max_size``.
    """
    return decompress(data, _body_coding(content_encoding), max_size=max_size)
