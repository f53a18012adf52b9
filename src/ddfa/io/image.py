"""Robust image reading: any photo file or array -> (H, W, 3) uint8 BGR.

Grayscale, alpha, 16-bit and float images are converted; missing, empty, truncated or
non-image files raise :class:`~ddfa.errors.ImageReadError` naming the file.
"""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

from ..errors import ImageReadError, InputError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".jp2", ".pgm", ".ppm", ".pnm")


def is_image_file(path: str | os.PathLike) -> bool:
    return Path(path).suffix.lower() in IMAGE_SUFFIXES


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


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Read a photo as (H, W, 3) uint8 BGR, exactly as ``cv2.imread`` does.

    EXIF orientation is applied; grayscale is replicated to three channels; an alpha channel is
    dropped; 16-bit images are scaled to 8 bits.

    Raises:
        ImageReadError: the path is missing, a folder, empty, truncated, or not a decodable image.
    """
    path = Path(path)
    source = str(path)
    if not path.exists():
        raise ImageReadError(f"{source}: no such file")
    if path.is_dir():
        raise ImageReadError(f"{source}: is a folder, not an image")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ImageReadError(f"{source}: cannot read ({exc.strerror or exc})") from None
    return decode_image(data, source)


def decode_image(data: bytes, source: str = "image") -> np.ndarray:
    """Decode the bytes of a photo file as :func:`read_image` does: (H, W, 3) uint8 BGR.

    ``source`` names the file (path or URI) in error messages.

    Raises:
        ImageReadError: the bytes are empty, truncated, or not a decodable image.
    """
    if not data:
        raise ImageReadError(f"{source}: empty file")
    _check_complete(data, source)
    # IMREAD_COLOR decodes exactly as cv2.imread does (and so as 3DDFA_V2 does): EXIF orientation
    # applied, gray replicated, alpha dropped, 16-bit scaled to 8-bit.
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if image is None or image.size == 0:
        raise ImageReadError(f"{source}: not an image, or a format OpenCV cannot decode")
    return image


def write_image(path: str | os.PathLike, image: np.ndarray) -> None:
    """Write a BGR image; the format follows the suffix. Creates the folder."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    ok, buffer = cv2.imencode(path.suffix or ".png", image)
    if not ok:
        raise ImageReadError(f"{path}: cannot encode image")
    path.write_bytes(buffer.tobytes())
