"""The IPTC digital source type as XMP, written into PNG, JPEG and WebP containers without re-encoding pixels.

Pillow can only write XMP while encoding, which would re-compress a provider's JPEG or WebP; these functions
splice one XMP packet into the file's container instead, replacing any XMP already there. Tools that read only
XMP (and not C2PA) then still see that an image is AI output.
"""

from __future__ import annotations

import re
import struct
import zlib
from xml.sax.saxutils import quoteattr

IPTC_TYPES = "http://cv.iptc.org/newscodes/digitalsourcetype/"
TRAINED = IPTC_TYPES + "trainedAlgorithmicMedia"
ALGORITHMIC = IPTC_TYPES + "algorithmicMedia"

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_XMP_KEYWORD = b"XML:com.adobe.xmp"
_JPEG_XMP_HEADER = b"http://ns.adobe.com/xap/1.0/\x00"
# Chunks that can carry text or camera data; the pixels never live in these.
_PNG_METADATA = {b"tEXt", b"iTXt", b"zTXt", b"eXIf", b"tIME"}
_SOURCE_TYPE = re.compile(rb"DigitalSourceType(?:=\"([^\"]{1,300})\"|>\s*([^<\s]{1,300})\s*<)")


def packet(source_type: str) -> bytes:
    """An XMP packet stating ``source_type`` (an IPTC digital source type URI)."""
    return ('<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>'
            '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
            '<rdf:Description rdf:about="" xmlns:Iptc4xmpExt="http://iptc.org/std/Iptc4xmpExt/2008-02-29/" '
            f'Iptc4xmpExt:DigitalSourceType={quoteattr(source_type)}/>'
            '</rdf:RDF></x:xmpmeta><?xpacket end="r"?>').encode()


def source_type_in(data: bytes) -> str | None:
    """The digital source type a file's XMP states, if any (read from the raw bytes: no XML parser is run on
    untrusted input, and a forged value is only ever shown as text)."""
    match = _SOURCE_TYPE.search(data)
    if match is None:
        return None
    value = (match.group(1) or match.group(2)).decode("utf-8", "replace")
    return value if value.isprintable() else None


def png(data: bytes, *, source_type: str | None, parameters: str | None) -> bytes:
    """The PNG with every text/EXIF chunk removed, then (unless None) the A1111 ``parameters`` text and the XMP
    right after the header, where A1111 writes it: readers that stop at the pixels still find them.

    Works on the chunk stream, so the pixels are never decoded or re-encoded."""
    if not data.startswith(_PNG_SIGNATURE):
        raise ValueError("not a PNG")
    out = [_PNG_SIGNATURE]
    position = len(_PNG_SIGNATURE)
    while position + 8 <= len(data):
        length, kind = struct.unpack(">I4s", data[position:position + 8])
        end = position + 12 + length
        if kind not in _PNG_METADATA:
            out.append(data[position:end])
        if kind == b"IHDR":
            if parameters is not None:
                out.append(_png_chunk(b"iTXt", b"parameters\0\0\0\0\0" + parameters.encode("utf-8")))
            if source_type is not None:
                out.append(_png_chunk(b"iTXt", _PNG_XMP_KEYWORD + b"\0\0\0\0\0" + packet(source_type)))
        position = end
        if kind == b"IEND":
            break
    return b"".join(out)


def jpeg(data: bytes, *, source_type: str) -> bytes:
    """The JPEG with its XMP segment replaced by ours, placed after the JFIF/EXIF headers as the spec orders."""
    if not data.startswith(b"\xff\xd8"):
        raise ValueError("not a JPEG")
    position, kept, insert_at = 2, [b"\xff\xd8"], 1
    while position + 4 <= len(data) and data[position] == 0xFF:
        marker = data[position + 1]
        if not (0xE0 <= marker <= 0xEF or marker == 0xFE):
            break  # past the application headers and comments: everything from here on is copied unchanged
        (length,) = struct.unpack(">H", data[position + 2:position + 4])
        segment = data[position:position + 2 + length]
        is_xmp = marker == 0xE1 and segment[4:4 + len(_JPEG_XMP_HEADER)] == _JPEG_XMP_HEADER
        if not is_xmp:
            kept.append(segment)
            if marker in (0xE0, 0xE1):
                insert_at = len(kept)
        position += 2 + length
    payload = _JPEG_XMP_HEADER + packet(source_type)
    kept.insert(insert_at, b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload)
    return b"".join(kept) + data[position:]


def webp(data: bytes, *, source_type: str, width: int, height: int) -> bytes:
    """The WebP in the extended (VP8X) container with the XMP flag set and one ``XMP `` chunk at the end."""
    if len(data) < 20 or data[:4] != b"RIFF" or data[8:12] != b"WEBP":
        raise ValueError("not a WebP")
    chunks: list[tuple[bytes, bytes]] = []
    position = 12
    while position + 8 <= len(data):
        kind, length = data[position:position + 4], struct.unpack("<I", data[position + 4:position + 8])[0]
        chunks.append((kind, data[position + 8:position + 8 + length]))
        position += 8 + length + (length & 1)
    flags = 0
    if chunks and chunks[0][0] == b"VP8X":
        flags = chunks[0][1][0]
        chunks = chunks[1:]
    elif any(kind == b"VP8L" and _lossless_alpha(body) for kind, body in chunks):
        flags |= 0x10  # the lossless bitstream says it uses alpha: the container must say so too
    chunks = [(kind, body) for kind, body in chunks if kind != b"XMP "]
    header = bytes([flags | 0x04, 0, 0, 0]) + (width - 1).to_bytes(3, "little") + (height - 1).to_bytes(3, "little")
    body = b"".join(_riff_chunk(kind, payload) for kind, payload in [(b"VP8X", header), *chunks,
                                                                      (b"XMP ", packet(source_type))])
    return b"RIFF" + struct.pack("<I", 4 + len(body)) + b"WEBP" + body


def _lossless_alpha(body: bytes) -> bool:
    """The ``alpha_is_used`` bit of a VP8L header: signature byte 0x2F, 14 + 14 bits of size, then this bit."""
    return len(body) >= 5 and body[0] == 0x2F and bool((int.from_bytes(body[1:5], "little") >> 28) & 1)


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def _riff_chunk(kind: bytes, payload: bytes) -> bytes:
    return kind + struct.pack("<I", len(payload)) + payload + (b"\0" if len(payload) & 1 else b"")
