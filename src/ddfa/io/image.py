"""Robust image reading: any photo file or array -> (H, W, 3) uint8 BGR.

Grayscale, alpha, 16-bit and float images are converted; missing, empty, truncated or
non-image files raise :class:`~ddfa.errors.ImageReadError` naming the file.

Nothing in a file is trusted before it is checked (:class:`InputLimits`, all documented
options of ``ddfa align`` too):

* only regular files are read (a FIFO, a device such as ``/dev/zero`` or a socket is refused
  without opening it for long: it is opened non-blocking and checked again);
* files larger than ``max_file_size`` bytes are refused before reading (default 512 MiB);
* the width and height are read from the header (:func:`ddfa.io.probe.probe_image`) and an
  image of more than ``max_pixels`` pixels is refused *before decoding* (default 100 MP); a
  file whose format is not recognised from its header is not decoded at all;
* a JPEG whose compressed data ends early (cut, even with an end marker appended: libjpeg
  pads it with grey) is refused; other libjpeg complaints are kept as warnings;
* only the first frame of a multi-frame file (animated GIF, WebP or PNG, multi-page TIFF, AVIF
  sequence) is read, with a warning saying so.

Warnings go to :attr:`ImageData.warnings` (:func:`read_image_data`, used by ``ddfa align``,
which records them in the result JSON) or, from :func:`read_image`, to Python's
:mod:`warnings` as :class:`~ddfa.errors.ImageWarning`.
"""

from __future__ import annotations

import errno
import math
import os
import stat
import sys
import tempfile
import threading
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ImageReadError, ImageWarning, InputError, LimitError

#: suffixes of the image files a folder scan takes
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".jpe", ".jfif", ".png", ".bmp", ".dib", ".tif", ".tiff", ".webp", ".gif",
                  ".jp2", ".j2k", ".avif", ".pgm", ".ppm", ".pnm", ".pbm", ".pam")
#: suffixes of image formats ddfa cannot read: a folder scan lists these as failures
UNSUPPORTED_IMAGE_SUFFIXES = (".heic", ".heif", ".jxl", ".svg", ".psd", ".xcf", ".ico", ".cr2", ".cr3", ".nef",
                              ".arw", ".dng", ".raf", ".orf", ".rw2", ".raw")

MIB = 1 << 20


@dataclass(frozen=True, kw_only=True)
class InputLimits:
    """Bounds on what ddfa accepts as input, with safe defaults.

    Attributes:
        max_pixels: images with more pixels (width x height, from the file header) are refused
            before decoding (default 100,000,000: a 12000 x 8000 photo fits).
        max_file_size: files larger than this many bytes are refused before reading (512 MiB).
        max_box_scale: user-given face boxes (and roi boxes) may be at most this many times
            the image's longer side, and may lie at most that far outside the image (4).
    """

    max_pixels: int = 100_000_000
    max_file_size: int = 512 * MIB
    max_box_scale: float = 4.0

    def __post_init__(self) -> None:
        for name in ("max_pixels", "max_file_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise InputError(f"{name} must be a positive integer, got {value!r}")
        scale = self.max_box_scale
        if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not math.isfinite(scale) or scale <= 0:
            raise InputError(f"max_box_scale must be a positive number, got {scale!r}")


DEFAULT_LIMITS = InputLimits()


@dataclass
class ImageData:
    """A decoded image file and what was noticed while reading it.

    Attributes:
        image: (H, W, 3) uint8 BGR.
        format: the file's format from its header (``"jpeg"``, ``"png"``, ...).
        frames: frames or pages in the file (only the first is read; None: several).
        warnings: one-line notes (a multi-frame file, libjpeg's complaints about the data).
    """

    image: np.ndarray
    format: str
    frames: int | None = 1
    warnings: list[str] = field(default_factory=list)


def is_image_file(path: str | os.PathLike) -> bool:
    """True for the suffixes a folder scan takes (:data:`IMAGE_SUFFIXES`)."""
    return Path(path).suffix.lower() in IMAGE_SUFFIXES


def is_unsupported_image_file(path: str | os.PathLike) -> bool:
    """True for suffixes of image formats ddfa cannot read (HEIC, RAW, ...)."""
    return Path(path).suffix.lower() in UNSUPPORTED_IMAGE_SUFFIXES


def _jpeg_is_complete(data: bytes) -> bool:
    """True when a JPEG stream has an end-of-image marker after its first scan.

    Header segments (EXIF thumbnails included) are skipped by their lengths; in the
    entropy-coded data a 0xFF byte is always followed by 0x00 or a marker, so the first
    0xFFD9 after the start of scan is the real end of the image.
    """
    pos = 2
    n = len(data)
    while pos + 4 <= n:
        if data[pos] != 0xFF:
            return False
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            pos += 2
            continue
        length = int.from_bytes(data[pos + 2 : pos + 4], "big")
        if marker == 0xDA:  # start of scan
            return data.find(b"\xff\xd9", pos + 2 + length) >= 0
        pos += 2 + length
    return False


def _check_complete(data: bytes, source: str) -> None:
    if data[:3] == b"\xff\xd8\xff" and not _jpeg_is_complete(data):
        raise ImageReadError(f"{source}: truncated or corrupt JPEG (no end-of-image marker)")
    if data[:8] == b"\x89PNG\r\n\x1a\n" and data.rfind(b"IEND") < 0:
        raise ImageReadError(f"{source}: truncated PNG (no IEND chunk)")


def to_bgr_uint8(image: np.ndarray, source: str = "image", *, rgb: bool = False) -> np.ndarray:
    """Convert an image array to contiguous (H, W, 3) uint8 BGR.

    Accepts (H, W) gray, (H, W, 1), (H, W, 3) and (H, W, 4) (alpha dropped) arrays of uint8,
    uint16 (top 8 bits, as OpenCV reads 16-bit files), other integers (clipped to 0..255), bool, or floats (0..1
    scaled to 0..255 when the maximum is <= 1, else clipped). ``rgb=True`` says the channels are
    in RGB(A) order.
    """
    import cv2  # on first use, not at start-up (docs/architecture.md, "Start-up without torch")
    if not isinstance(image, np.ndarray):
        raise InputError(f"{source}: expected a numpy array, got {type(image).__name__}")
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] not in (3, 4)):
        raise InputError(f"{source}: expected an (H, W), (H, W, 3) or (H, W, 4) image, got shape {image.shape}")
    if image.shape[0] < 1 or image.shape[1] < 1:
        raise InputError(f"{source}: empty image of shape {image.shape}")
    if image.dtype == np.uint8:
        pass
    elif image.dtype == np.uint16:
        image = (image >> 8).astype(np.uint8)  # as OpenCV converts 16-bit files
    elif image.dtype == np.bool_:
        image = image.astype(np.uint8) * 255
    elif np.issubdtype(image.dtype, np.integer):
        image = np.clip(image, 0, 255).astype(np.uint8)
    elif np.issubdtype(image.dtype, np.floating):
        finite = np.nan_to_num(image.astype(np.float32), nan=0.0, posinf=255.0, neginf=0.0)
        if finite.size and finite.max() <= 1.0:
            finite = finite * 255.0
        image = np.clip(np.rint(finite), 0, 255).astype(np.uint8)
    else:
        raise InputError(f"{source}: unsupported image dtype {image.dtype}")
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    if image.shape[2] == 4:
        image = cv2.cvtColor(image, cv2.COLOR_RGBA2BGR if rgb else cv2.COLOR_BGRA2BGR)
    elif rgb:
        image = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    return np.ascontiguousarray(image)


def read_file_bytes(path: str | os.PathLike, *, max_size: int = DEFAULT_LIMITS.max_file_size,
                    what: str = "file") -> bytes:
    """The bytes of a regular file of at most ``max_size`` bytes.

    FIFOs, devices and sockets are refused without blocking (the file is checked before
    opening, opened non-blocking and checked again).

    Raises:
        ImageReadError: missing, a folder, a broken link or link loop, not a regular file, or
            unreadable.
        LimitError: larger than ``max_size`` bytes.
    """
    source = str(path)
    try:
        info = os.stat(path)
    except FileNotFoundError:
        if os.path.islink(path):
            raise ImageReadError(f"{source}: broken symbolic link (its target does not exist)") from None
        raise ImageReadError(f"{source}: no such file") from None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise ImageReadError(f"{source}: symbolic link loop") from None
        raise ImageReadError(f"{source}: cannot read ({exc.strerror or exc})") from None
    if stat.S_ISDIR(info.st_mode):
        raise ImageReadError(f"{source}: is a folder, not an image")
    if not stat.S_ISREG(info.st_mode):
        raise ImageReadError(f"{source}: {_file_kind(info.st_mode)}, not a regular file; ddfa reads regular files only")
    if info.st_size > max_size:
        raise LimitError(f"{source}: {what} of {info.st_size / MIB:.1f} MiB is larger than the limit of "
                         f"{max_size / MIB:.1f} MiB (max_file_size / --max-file-size)")
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0)
                     | getattr(os, "O_BINARY", 0))
    except OSError as exc:
        raise ImageReadError(f"{source}: cannot read ({exc.strerror or exc})") from None
    try:
        opened = os.fstat(fd)
        if not stat.S_ISREG(opened.st_mode):  # replaced between the checks
            raise ImageReadError(f"{source}: {_file_kind(opened.st_mode)}, not a regular file")
        chunks, total = [], 0
        while total <= max_size:
            chunk = os.read(fd, min(8 * MIB, max_size + 1 - total))
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
    except OSError as exc:
        raise ImageReadError(f"{source}: cannot read ({exc.strerror or exc})") from None
    finally:
        os.close(fd)
    if total > max_size:
        raise LimitError(f"{source}: {what} grew beyond the limit of {max_size / MIB:.1f} MiB while being read")
    return b"".join(chunks)


def _file_kind(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISCHR(mode):
        return "a character device"
    if stat.S_ISBLK(mode):
        return "a block device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "a special file"


_STDERR_LOCK = threading.Lock()
_CAPTURE: dict[int, Any] = {}  # process id -> the file decoder messages are caught in (one per process)
#: libjpeg's messages for compressed data that ends early (the rest of the image is made up)
_JPEG_TRUNCATED = ("premature end of data segment", "premature end of jpeg file")


def _imdecode_collecting_messages(buffer: np.ndarray) -> tuple[np.ndarray | None, list[str]]:
    """``cv2.imdecode`` with what the decoder library prints on stderr (libjpeg's warnings),
    returned instead of printed. Other output is passed on to stderr."""
    import cv2  # on first use, not at start-up (docs/architecture.md, "Start-up without torch")
    with _STDERR_LOCK:
        try:
            sys.stderr.flush()
            saved = os.dup(2)
        except (OSError, ValueError, AttributeError):  # no usable stderr: decode without listening
            return cv2.imdecode(buffer, cv2.IMREAD_COLOR), []
        try:
            capture = _CAPTURE.get(os.getpid())
            if capture is None:
                capture = _CAPTURE[os.getpid()] = tempfile.TemporaryFile()
            capture.seek(0)
            capture.truncate()
            os.dup2(capture.fileno(), 2)
            try:
                image = cv2.imdecode(buffer, cv2.IMREAD_COLOR)
            finally:
                os.dup2(saved, 2)
            capture.seek(0)
            text = capture.read(1 << 16).decode("utf-8", "replace")
        finally:
            os.close(saved)
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    ours = [line for line in lines
            if "jpeg" in line.lower() or line.lower().startswith(("corrupt", "warning", "invalid"))]
    others = [line for line in lines if line not in ours]
    if others:
        try:
            os.write(2, ("\n".join(others) + "\n").encode())
        except OSError:
            pass
    return image, ours


def decode_image(data: bytes, source: str = "image", *, limits: InputLimits | None = None) -> ImageData:
    """Decode the bytes of an image file into (H, W, 3) uint8 BGR, within ``limits``.

    See the module docstring for the checks; :func:`read_image_data` reads a file first.

    Raises:
        ImageReadError: empty, truncated, not an image or not decodable.
        LimitError: more pixels than ``limits.max_pixels``.
    """
    import cv2  # on first use, not at start-up (docs/architecture.md, "Start-up without torch")

    from .probe import HeaderError, probe_image

    limits = limits or DEFAULT_LIMITS
    if not data:
        raise ImageReadError(f"{source}: empty file")
    _check_complete(data, source)
    try:
        header = probe_image(data)
    except HeaderError as exc:
        raise ImageReadError(f"{source}: not an image, or a format ddfa cannot read ({exc})") from None
    if header.pixels > limits.max_pixels:
        raise LimitError(f"{source}: {header.width} x {header.height} pixels ({header.pixels / 1e6:.1f} MP) is more "
                         f"than the limit of {limits.max_pixels / 1e6:g} MP (max_pixels / --max-pixels); not decoded")
    if header.format == "heif":
        raise ImageReadError(f"{source}: HEIC/HEIF images are not supported; convert it to JPEG or PNG")
    notes: list[str] = []
    buffer = np.frombuffer(data, np.uint8)
    # IMREAD_COLOR decodes exactly as cv2.imread does (and so as 3DDFA_V2 does): EXIF orientation
    # applied, gray replicated, alpha dropped, 16-bit scaled to 8-bit.
    try:
        if header.format == "jpeg":
            image, messages = _imdecode_collecting_messages(buffer)
            if any(m.lower().startswith(t) or t in m.lower() for m in messages for t in _JPEG_TRUNCATED):
                raise ImageReadError(f"{source}: truncated or corrupt JPEG: the compressed data ends early "
                                     "(libjpeg would pad the rest of the image with grey)")
            notes += [f"libjpeg: {m}" for m in dict.fromkeys(messages)]
        else:
            image = cv2.imdecode(buffer, cv2.IMREAD_COLOR)
    except cv2.error as exc:
        detail = " ".join(str(exc).split())
        raise ImageReadError(f"{source}: cannot decode this {header.format.upper()} file ({detail[-160:]})") from None
    if image is None or image.size == 0:
        raise ImageReadError(f"{source}: not an image, or a format OpenCV cannot decode")
    if image.shape[0] * image.shape[1] > limits.max_pixels:  # a header that lied
        raise LimitError(f"{source}: decoded to {image.shape[1]} x {image.shape[0]} pixels, more than the limit of "
                         f"{limits.max_pixels / 1e6:g} MP")
    if header.frames != 1:
        count = "several" if header.frames is None else str(header.frames)
        notes.append(f"{header.format.upper()} file with {count} frames or pages: only the first was read")
    return ImageData(image=image, format=header.format, frames=header.frames, warnings=notes)


def read_image_data(path: str | os.PathLike, *, limits: InputLimits | None = None) -> ImageData:
    """Read and decode an image file within ``limits`` (see the module docstring).

    Raises:
        ImageReadError: the path is missing, a folder, not a regular file, empty, truncated,
            or not a decodable image.
        LimitError: the file or the image is larger than ``limits`` allow.
    """
    limits = limits or DEFAULT_LIMITS
    data = read_file_bytes(path, max_size=limits.max_file_size, what="image file")
    return decode_image(data, str(path), limits=limits)


def read_image(path: str | os.PathLike, *, limits: InputLimits | None = None) -> np.ndarray:
    """Read a photo as (H, W, 3) uint8 BGR, exactly as ``cv2.imread`` does.

    EXIF orientation is applied; grayscale is replicated to three channels; an alpha channel is
    dropped; 16-bit images are scaled to 8 bits. Within ``limits`` (default
    :class:`InputLimits`); what was noticed while reading (e.g. a multi-frame file) is issued
    as an :class:`~ddfa.errors.ImageWarning`.

    Raises:
        ImageReadError: the path is missing, a folder, not a regular file, empty, truncated,
            or not a decodable image.
        LimitError: the file or the image is larger than ``limits`` allow.
    """
    data = read_image_data(path, limits=limits)
    for note in data.warnings:
        warnings.warn(f"{path}: {note}", ImageWarning, stacklevel=2)
    return data.image


def encode_image(image: np.ndarray, suffix: str = ".png", *, name: str | os.PathLike = "image") -> bytes:
    """The file bytes of a BGR image in the format of ``suffix`` (``".png"``, ``".jpg"``, ...).

    Raises:
        ImageReadError: OpenCV cannot encode it (``name`` says which image).
    """
    import cv2  # on first use, not at start-up (docs/architecture.md, "Start-up without torch")

    ok, buffer = cv2.imencode(suffix, image)
    if not ok:
        raise ImageReadError(f"{name}: cannot encode image")
    return buffer.tobytes()


def write_image(path: str | os.PathLike, image: np.ndarray) -> None:
    """Write a BGR image atomically (temporary file, then rename); the format follows the
    suffix. Creates the folder.

    Raises:
        OutputError: the file cannot be written (no partial file is left behind).
    """
    from .atomic import atomic_write_bytes, output_error

    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise output_error(exc, path.parent, "cannot create the folder") from None
    atomic_write_bytes(path, encode_image(image, path.suffix or ".png", name=path))
