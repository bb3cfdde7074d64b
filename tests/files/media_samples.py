"""Small real media files made in code (nothing downloaded): enough bytes for detection."""

from __future__ import annotations

import struct
import zlib


def png(width: int = 2, height: int = 2) -> bytes:
    """A valid RGB PNG of the given size (all red)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    rows = b"".join(b"\x00" + b"\xff\x00\x00" * width for _ in range(height))
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


def mp4(payload: int = 4000) -> bytes:
    """An ISO base media file: ``ftyp`` box, then an ``mdat`` box of ``payload`` bytes
    (counting 0, 1, 2, ... mod 256, so a byte range can be checked)."""
    ftyp = b"ftyp" + b"isom" + struct.pack(">I", 512) + b"isomiso2avc1mp41"
    data = bytes(i % 256 for i in range(payload))
    return struct.pack(">I", 4 + len(ftyp)) + ftyp + struct.pack(">I", 8 + payload) + b"mdat" + data


def wav(samples: int = 800) -> bytes:
    """A mono 8-bit 8 kHz PCM WAV file of silence."""
    fmt = struct.pack("<HHIIHH", 1, 1, 8000, 8000, 1, 8)
    data = b"\x80" * samples
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"data"
    body += struct.pack("<I", len(data)) + data
    return b"RIFF" + struct.pack("<I", len(body)) + body


def mp3(frames: int = 3) -> bytes:
    """An ID3v2.4 tag followed by MPEG-1 Layer III frame headers (silent frames)."""
    tag = b"ID3\x04\x00\x00\x00\x00\x00\x00"
    frame = b"\xff\xfb\x90\x64" + b"\x00" * 413
    return tag + frame * frames


def ogg_opus() -> bytes:
    """The first Ogg page of an Opus stream (what Firefox's MediaRecorder makes)."""
    head = b"OpusHead" + bytes([1, 1]) + struct.pack("<HIhB", 312, 48000, 0, 0)
    page = b"OggS" + bytes([0, 2]) + struct.pack("<qIII", 0, 1, 0, 0) + bytes([1, len(head)])
    return page + head


def html() -> bytes:
    return b"<html><body><script>alert(document.cookie)</script></body></html>"


def svg() -> bytes:
    return b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>'
