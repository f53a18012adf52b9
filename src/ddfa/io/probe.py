"""What an image file says about itself, read from its header without decoding it.

:func:`probe_image` returns the format, the width and height and the number of frames (pages)
of the image formats OpenCV decodes: JPEG, PNG (and APNG), GIF, WebP, BMP, TIFF (and BigTIFF),
PNM/PAM/PFM, JPEG 2000 (JP2 and raw codestreams), AVIF/HEIF, Sun raster, Radiance HDR and
OpenEXR. It reads a few header fields and walks block or chunk lists with every offset checked,
so a hostile file can neither make it read out of bounds nor loop: it is what lets
:func:`ddfa.io.image.read_image` refuse a 30000 x 30000 PNG before decoding a single pixel.

Frame counts are exact for GIF (image descriptors), TIFF (pages), APNG (``acTL``) and animated
WebP (``ANMF`` chunks); an AVIF image sequence reports ``frames=None`` ("more than one,
unknown"); every other format holds one image.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass

#: upper bound on the blocks / chunks / pages walked in one file (a hostile file cannot loop)
MAX_WALK = 100_000


@dataclass(frozen=True)
class ImageHeader:
    """Format, size and frame count of an image file.

    Attributes:
        format: ``"jpeg"``, ``"png"``, ``"gif"``, ``"webp"``, ``"bmp"``, ``"tiff"``, ``"pnm"``,
            ``"jp2"``, ``"avif"``, ``"heif"``, ``"sunras"``, ``"hdr"`` or ``"exr"``.
        width, height: pixels of the (first) image, as declared.
        frames: number of frames or pages (1 for single images; None: several, count unknown).
    """

    format: str
    width: int
    height: int
    frames: int | None = 1

    @property
    def pixels(self) -> int:
        return self.width * self.height


class HeaderError(ValueError):
    """The bytes are not a well-formed header of a known image format."""


def _u16(data: bytes, pos: int, order: str = ">") -> int:
    if pos < 0 or pos + 2 > len(data):
        raise HeaderError("header ends early")
    return struct.unpack_from(order + "H", data, pos)[0]


def _u32(data: bytes, pos: int, order: str = ">") -> int:
    if pos < 0 or pos + 4 > len(data):
        raise HeaderError("header ends early")
    return struct.unpack_from(order + "I", data, pos)[0]


def _u64(data: bytes, pos: int, order: str = ">") -> int:
    if pos < 0 or pos + 8 > len(data):
        raise HeaderError("header ends early")
    return struct.unpack_from(order + "Q", data, pos)[0]


# ---------------------------------------------------------------------- formats
def _png(data: bytes) -> ImageHeader:
    if data[12:16] != b"IHDR":
        raise HeaderError("PNG without an IHDR chunk first")
    width, height = _u32(data, 16), _u32(data, 20)
    frames = 1
    pos = 8
    for _ in range(MAX_WALK):
        if pos + 8 > len(data):
            break
        length = _u32(data, pos)
        kind = data[pos + 4 : pos + 8]
        if kind == b"acTL":
            frames = max(1, _u32(data, pos + 8))
        if kind in (b"IDAT", b"IEND"):
            break
        pos += 12 + length
    return ImageHeader("png", width, height, frames)


_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


def _jpeg(data: bytes) -> ImageHeader:
    pos = 2
    for _ in range(MAX_WALK):
        if pos + 4 > len(data):
            break
        if data[pos] != 0xFF:
            raise HeaderError("JPEG marker expected")
        marker = data[pos + 1]
        if marker == 0xFF:
            pos += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            pos += 2
            continue
        length = _u16(data, pos + 2)
        if marker in _SOF:
            height, width = _u16(data, pos + 5), _u16(data, pos + 7)
            if width == 0 or height == 0:
                raise HeaderError("JPEG frame of size 0 (height defined later by a DNL marker is not supported)")
            return ImageHeader("jpeg", width, height)
        if marker in (0xDA, 0xD9):
            break
        if length < 2:
            raise HeaderError("JPEG segment of length < 2")
        pos += 2 + length
    raise HeaderError("JPEG without a frame header (SOF)")


def _gif(data: bytes) -> ImageHeader:
    width, height = _u16(data, 6, "<"), _u16(data, 8, "<")
    flags = data[10] if len(data) > 10 else 0
    pos = 13 + (3 * (2 << (flags & 7)) if flags & 0x80 else 0)
    frames = 0
    frame_w, frame_h = width, height

    def skip_sub_blocks(p: int) -> int:
        for _ in range(MAX_WALK * 10):
            if p >= len(data):
                return p
            size = data[p]
            p += 1 + size
            if size == 0:
                return p
        raise HeaderError("GIF with too many data blocks")

    for _ in range(MAX_WALK):
        if pos >= len(data):
            break
        kind = data[pos]
        if kind == 0x3B:  # trailer
            break
        if kind == 0x21:  # extension: label, then sub-blocks
            pos = skip_sub_blocks(pos + 2)
        elif kind == 0x2C:  # image descriptor
            frames += 1
            left, top = _u16(data, pos + 1, "<"), _u16(data, pos + 3, "<")
            frame_w = max(frame_w, left + _u16(data, pos + 5, "<"))
            frame_h = max(frame_h, top + _u16(data, pos + 7, "<"))
            packed = data[pos + 9] if pos + 9 < len(data) else 0
            pos += 10 + (3 * (2 << (packed & 7)) if packed & 0x80 else 0)
            pos = skip_sub_blocks(pos + 1)  # LZW minimum code size, then the data
        else:
            break  # garbage after the last image: decoders stop here too
    return ImageHeader("gif", max(width, frame_w), max(height, frame_h), max(frames, 1))


def _webp(data: bytes) -> ImageHeader:
    kind = data[12:16]
    if kind == b"VP8 ":
        if data[23:26] != b"\x9d\x01\x2a":
            raise HeaderError("WebP VP8 frame without its start code")
        return ImageHeader("webp", _u16(data, 26, "<") & 0x3FFF, _u16(data, 28, "<") & 0x3FFF)
    if kind == b"VP8L":
        if len(data) < 25 or data[20] != 0x2F:
            raise HeaderError("WebP VP8L without its signature")
        bits = _u32(data, 21, "<")
        return ImageHeader("webp", (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1)
    if kind == b"VP8X":
        if len(data) < 30:
            raise HeaderError("header ends early")
        flags = data[20]
        width = 1 + int.from_bytes(data[24:27], "little")
        height = 1 + int.from_bytes(data[27:30], "little")
        frames = 1
        if flags & 0x02:  # animation: count the ANMF chunks
            frames = 0
            pos = 12
            for _ in range(MAX_WALK):
                if pos + 8 > len(data):
                    break
                size = _u32(data, pos + 4, "<")
                if data[pos : pos + 4] == b"ANMF":
                    frames += 1
                pos += 8 + size + (size & 1)
            frames = max(frames, 1)
        return ImageHeader("webp", width, height, frames)
    raise HeaderError("WebP without a VP8/VP8L/VP8X chunk")


def _bmp(data: bytes) -> ImageHeader:
    size = _u32(data, 14, "<")
    if size == 12:
        return ImageHeader("bmp", _u16(data, 18, "<"), _u16(data, 20, "<"))
    width = struct.unpack_from("<i", data, 18)[0] if len(data) >= 26 else 0
    height = struct.unpack_from("<i", data, 22)[0] if len(data) >= 26 else 0
    return ImageHeader("bmp", abs(width), abs(height))


def _tiff(data: bytes) -> ImageHeader:
    order = "<" if data[:2] == b"II" else ">"
    big = _u16(data, 2, order) == 43
    if big:
        offset = _u64(data, 8, order)
        count_size, entry_size, next_size = 8, 20, 8
    else:
        offset = _u32(data, 4, order)
        count_size, entry_size, next_size = 2, 12, 4
    width = height = None
    pages = 0
    seen: set[int] = set()
    for _ in range(MAX_WALK):
        if offset == 0 or offset in seen or offset + count_size > len(data):
            break
        seen.add(offset)
        count = _u64(data, offset, order) if big else _u16(data, offset, order)
        entries = offset + count_size
        if entries + count * entry_size + next_size > len(data):
            if pages == 0:
                raise HeaderError("TIFF directory ends early")
            break
        pages += 1
        if pages == 1:
            for k in range(min(count, 4096)):
                entry = entries + k * entry_size
                tag, kind = _u16(data, entry, order), _u16(data, entry + 2, order)
                if tag not in (256, 257):
                    continue
                value_pos = entry + (12 if big else 8)
                if kind == 3:
                    value = _u16(data, value_pos, order)
                elif kind == 4:
                    value = _u32(data, value_pos, order)
                elif kind == 16 and big:
                    value = _u64(data, value_pos, order)
                else:
                    raise HeaderError("TIFF image size of an unexpected type")
                if tag == 256:
                    width = value
                else:
                    height = value
        offset_pos = entries + count * entry_size
        offset = _u64(data, offset_pos, order) if big else _u32(data, offset_pos, order)
    if width is None or height is None:
        raise HeaderError("TIFF without image width and length")
    return ImageHeader("tiff", width, height, max(pages, 1))


_PNM_TOKEN = re.compile(rb"(?:\s|#[^\n]*\n?)*(\S+)")


def _pnm(data: bytes) -> ImageHeader:
    head = data[:4096]
    if head[:2] == b"P7":  # PAM: WIDTH w / HEIGHT h lines
        width = re.search(rb"\nWIDTH\s+(\d+)", head)
        height = re.search(rb"\nHEIGHT\s+(\d+)", head)
        if not (width and height):
            raise HeaderError("PAM header without WIDTH and HEIGHT")
        return ImageHeader("pnm", int(width.group(1)), int(height.group(1)))
    pos = 2
    values = []
    for _ in range(2):
        match = _PNM_TOKEN.match(head, pos)
        if not match or not match.group(1).isdigit():
            raise HeaderError("PNM header without width and height")
        values.append(int(match.group(1)))
        pos = match.end()
    return ImageHeader("pnm", values[0], values[1])


def _j2k_codestream(data: bytes, start: int) -> ImageHeader:
    if data[start : start + 4] != b"\xff\x4f\xff\x51":
        raise HeaderError("JPEG 2000 codestream without SIZ")
    x, y = _u32(data, start + 8), _u32(data, start + 12)
    x0, y0 = _u32(data, start + 16), _u32(data, start + 20)
    if x <= x0 or y <= y0:
        raise HeaderError("JPEG 2000 image of size 0")
    return ImageHeader("jp2", x - x0, y - y0)


def _jp2(data: bytes) -> ImageHeader:
    pos = data.find(b"ihdr", 0, 1 << 16)
    if pos < 0:
        raise HeaderError("JP2 without an ihdr box")
    return ImageHeader("jp2", _u32(data, pos + 8), _u32(data, pos + 4))


def _isobmff(data: bytes) -> ImageHeader:
    brands = data[8:12] + data[16 : min(len(data), 4 + _u32(data, 0))]
    fmt = "avif" if b"avif" in brands or b"avis" in brands else "heif"
    pos = data.find(b"ispe", 0, 1 << 20)
    if pos < 0:
        raise HeaderError(f"{fmt.upper()} without an image size (ispe) box")
    width, height = _u32(data, pos + 8), _u32(data, pos + 12)
    frames = None if data[8:12] == b"avis" or b"avis" in brands else 1
    return ImageHeader(fmt, width, height, frames)


def _sunras(data: bytes) -> ImageHeader:
    return ImageHeader("sunras", _u32(data, 4), _u32(data, 8))


def _hdr(data: bytes) -> ImageHeader:
    match = re.search(rb"\n\s*([-+])([YX])\s+(\d+)\s+([-+])([YX])\s+(\d+)", data[:65536])
    if not match:
        raise HeaderError("Radiance HDR without a resolution line")
    first, second = int(match.group(3)), int(match.group(6))
    return ImageHeader("hdr", second, first) if match.group(2) == b"Y" else ImageHeader("hdr", first, second)


def _exr(data: bytes) -> ImageHeader:
    pos = data.find(b"dataWindow\x00box2i\x00", 0, 1 << 16)
    if pos < 0:
        raise HeaderError("OpenEXR without a dataWindow")
    start = pos + len(b"dataWindow\x00box2i\x00") + 4
    if start + 16 > len(data):
        raise HeaderError("header ends early")
    x0, y0, x1, y1 = struct.unpack_from("<iiii", data, start)
    return ImageHeader("exr", x1 - x0 + 1, y1 - y0 + 1)


def probe_image(data: bytes) -> ImageHeader:
    """Read the format, size and frame count from the first bytes of an image file.

    Raises:
        HeaderError: not a known image format, or a malformed header.
    """
    try:
        if data[:8] == b"\x89PNG\r\n\x1a\n":
            header = _png(data)
        elif data[:3] == b"\xff\xd8\xff":
            header = _jpeg(data)
        elif data[:6] in (b"GIF87a", b"GIF89a"):
            header = _gif(data)
        elif data[:4] == b"RIFF" and data[8:12] == b"WEBP":
            header = _webp(data)
        elif data[:2] == b"BM":
            header = _bmp(data)
        elif data[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
            header = _tiff(data)
        elif len(data) > 2 and data[:1] == b"P" and data[1:2] in b"1234567" and data[2:3].isspace():
            header = _pnm(data)
        elif data[:2] in (b"PF", b"Pf") and data[2:3].isspace():
            header = _pnm(data)
        elif data[:12] == b"\x00\x00\x00\x0cjP  \r\n\x87\n":
            header = _jp2(data)
        elif data[:4] == b"\xff\x4f\xff\x51":
            header = _j2k_codestream(data, 0)
        elif data[4:8] == b"ftyp":
            header = _isobmff(data)
        elif data[:4] == b"\x59\xa6\x6a\x95":
            header = _sunras(data)
        elif data[:2] == b"#?":  # Radiance HDR: "#?RADIANCE" or "#?RGBE"
            header = _hdr(data)
        elif data[:4] == b"\x76\x2f\x31\x01":
            header = _exr(data)
        else:
            raise HeaderError("not a known image format")
    except (struct.error, IndexError) as exc:  # belt and braces: every read above is bounds-checked
        raise HeaderError(f"malformed header ({exc})") from None
    if header.width <= 0 or header.height <= 0:
        raise HeaderError(f"{header.format.upper()} declares an image of {header.width} x {header.height} pixels")
    return header


__all__ = ["HeaderError", "ImageHeader", "probe_image"]
