"""Issue 12, library level: hostile and messy input is refused with ddfa's own one-line errors,
within documented limits, and nothing untrusted is used (pickles, checkpoints, cached models)."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import pickle
import stat
import struct
import threading
import time
import zlib

import cv2
import numpy as np
import pytest
import torch

import ddfa
from ddfa.assets.safe_pickle import PickleBudget, loads_numpy_pickle
from ddfa.errors import AssetError, DdfaError, ImageReadError, ImageWarning, InputError, LimitError, UnsafePickleError
from ddfa.io.image import InputLimits, decode_image, read_image, read_image_data
from ddfa.io.probe import probe_image
from ddfa.io.results import write_json


@pytest.fixture(scope="module")
def photo(example_images):
    return read_image(example_images["JianzhuGuo.jpg"])


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def huge_png(width: int, height: int) -> bytes:
    """A small, well-formed PNG that declares ``width`` x ``height`` pixels (one row of data)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr)
            + _png_chunk(b"IDAT", zlib.compress(b"\x00" * (1 + 3 * min(width, 4096)))) + _png_chunk(b"IEND", b""))


# ---------------------------------------------------------------------- limits on image files
def test_pixel_limit_is_checked_before_decoding(tmp_path):
    path = tmp_path / "bomb.png"
    path.write_bytes(huge_png(30000, 30000))
    start = time.perf_counter()
    with pytest.raises(LimitError) as info:
        read_image(path)
    assert time.perf_counter() - start < 1.0  # decoding 900 MP would take tens of seconds
    message = str(info.value)
    assert str(path) in message and "30000 x 30000" in message and "max_pixels" in message
    # the limit is an option: a normal photo is refused under a lower one, accepted under the default
    small = tmp_path / "small.png"
    cv2.imwrite(str(small), np.zeros((40, 50, 3), np.uint8))
    with pytest.raises(LimitError):
        read_image(small, limits=InputLimits(max_pixels=1999))
    assert read_image(small).shape == (40, 50, 3)


def test_file_size_limit_and_special_files(tmp_path):
    path = tmp_path / "big.png"
    path.write_bytes(huge_png(100, 100) + b"\x00" * (2 << 20))
    with pytest.raises(LimitError, match="max_file_size"):
        read_image(path, limits=InputLimits(max_file_size=1 << 20))
    # /dev/zero: refused at once, without reading (it would grow memory without bound)
    with pytest.raises(ImageReadError, match="character device.*not a regular file"):
        read_image("/dev/zero")
    # a FIFO with no writer: refused without blocking
    fifo = tmp_path / "pipe.jpg"
    os.mkfifo(fifo)
    outcome: list = []

    def attempt():
        try:
            read_image(fifo)
        except DdfaError as exc:
            outcome.append(exc)

    thread = threading.Thread(target=attempt, daemon=True)
    thread.start()
    thread.join(timeout=10)
    if thread.is_alive():  # unblock the reader before failing
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        pytest.fail("reading a FIFO blocked")
    assert isinstance(outcome[0], ImageReadError) and "FIFO" in str(outcome[0])


def test_header_probe_matches_every_format_opencv_writes(photo):
    small = cv2.resize(photo, (123, 97))
    for ext in (".jpg", ".png", ".bmp", ".tiff", ".webp", ".gif", ".jp2", ".ppm", ".pam", ".sr"):
        ok, buffer = cv2.imencode(ext, small)
        assert ok, ext
        header = probe_image(buffer.tobytes())
        assert (header.width, header.height, header.frames) == (123, 97, 1), ext
    ok, buffer = cv2.imencodemulti(".tiff", [small, small, small])
    assert probe_image(buffer.tobytes()).frames == 3


def test_truncated_jpeg_with_end_marker_is_refused(example_images):
    data = example_images["JianzhuGuo.jpg"].read_bytes()
    cut = data[: len(data) // 2] + b"\xff\xd9"  # cut at 50 %, end-of-image marker appended
    with pytest.raises(ImageReadError, match="truncated or corrupt JPEG"):
        decode_image(cut, "cut.jpg")
    assert decode_image(data, "whole.jpg").warnings == []


def test_multi_frame_files_warn_that_only_the_first_frame_is_read(tmp_path, photo):
    small = cv2.resize(photo, (80, 100))
    for ext in (".gif", ".tiff"):
        ok, buffer = cv2.imencodemulti(ext, [small, small[::-1].copy()])
        path = tmp_path / f"anim{ext}"
        path.write_bytes(buffer.tobytes())
        data = read_image_data(path)
        assert data.frames == 2 and data.image.shape == (100, 80, 3)
        assert any("2 frames" in w and "only the first" in w for w in data.warnings), data.warnings
        with pytest.warns(ImageWarning, match="only the first"):
            read_image(path)


def test_thin_images_align_without_opencv_assertions(aligner):
    for shape in ((2, 3000, 3), (3000, 2, 3)):
        assert aligner(np.zeros(shape, np.uint8)) == []


# ---------------------------------------------------------------------- API argument checks
def test_api_refuses_bad_arguments_with_ddfa_errors(aligner, photo, assets_dir):
    with pytest.raises(InputError, match="max_faces"):
        aligner(photo, max_faces=1.5)
    with pytest.raises(InputError, match="numbers"):
        aligner(photo, boxes=[["a", "b", "c", "d"]])
    with pytest.raises(InputError, match="numbers"):
        aligner(photo, boxes="abcd")
    with pytest.raises(InputError, match="NaN"):
        aligner(photo, boxes=[[np.nan, 0, 100, 100]])
    with pytest.raises(InputError, match="NaN"):
        aligner.align_rois(photo, [[np.nan, 0, 100, 100]])
    start = time.perf_counter()
    with pytest.raises(InputError, match="unknown mesh"):
        ddfa.FaceAligner(assets=assets_dir, mesh="banana")
    assert time.perf_counter() - start < 1.0  # refused before any model is loaded


def test_user_boxes_are_bounded_relative_to_the_image(aligner, photo):
    # 413 x 551 photo: a 16000-pixel box would need a 25000 x 25000 crop (2.2 GB)
    for box in ([-8000, -8000, 8000, 8000], [0, 0, 1e30, 1e30], [1e30, 1e30, 2e30, 2e30]):
        with pytest.raises(LimitError, match="max_box_scale"):
            aligner(photo, boxes=[box])
    with pytest.raises(LimitError):
        aligner.align_rois(photo, [[-8000, -8000, 8000, 8000]])
    # within the bound, even partly or wholly outside the photo, boxes are aligned
    assert len(aligner(photo, boxes=[[-1500, -1500, -1000, -1000]])) == 1
    assert len(aligner(photo, boxes=[[-8000, -8000, 8000, 8000]], limits=InputLimits(max_box_scale=40.0))) == 1


def test_texture_of_a_face_outside_the_photo_is_background(aligner, photo):
    (face,) = aligner(photo, boxes=[[-1500, -1500, -1000, -1000]])
    texture = face.uv_texture(photo, size=64)
    assert texture.shape == (64, 64, 3) and not texture.any()


# ---------------------------------------------------------------------- JSON
def test_json_never_holds_bare_nan_and_gets_the_usual_mode(tmp_path):
    old = os.umask(0o022)
    try:
        path = write_json(tmp_path / "r.json", {"x": float("nan"), "y": [np.float32("inf"), 1.5],
                                                 "z": np.array([np.nan, 2.0])})
    finally:
        os.umask(old)

    def refuse(constant):
        raise AssertionError(f"bare {constant} in JSON")

    data = json.loads(path.read_text(), parse_constant=refuse)
    assert data["x"] is None and data["y"] == [None, 1.5] and data["z"] == [None, 2.0]
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]  # no temporary file left


def test_json_text_is_the_same_whether_values_need_converting_or_not(tmp_path):
    """Plain finite values go to json's encoder as they are, others are converted first: the
    same text either way (a face record as lists, the same values as numpy)."""
    from ddfa.io.results import dumps, json_ready

    plain = {"box": [1.5, 2.25, 30.0, 40.0], "landmarks_68": [[1.0, 2.0, -3.5]] * 68, "pose": {"yaw": 12.5},
             "landmarks_visible": [True] * 68, "track_id": 3, "note": "ok"}
    as_numpy = {**plain, "box": np.array(plain["box"], np.float64), "landmarks_68": np.array(plain["landmarks_68"]),
                "landmarks_visible": np.ones(68, bool), "track_id": np.int64(3), "path": tmp_path}
    for kwargs in ({}, {"indent": 1}, {"separators": (",", ":")}):
        assert dumps(plain, **kwargs) == json.dumps(json_ready(plain), **kwargs)
        expected = json.dumps({**plain, "path": str(tmp_path)}, **kwargs)
        assert dumps(as_numpy, **kwargs) == expected


# ---------------------------------------------------------------------- the restricted unpickler
_ARRAYS = {"f32": np.arange(12, dtype=np.float32).reshape(3, 4), "fortran": np.asfortranarray(np.ones((2, 3))),
           "i8": np.array([-1, 2], np.int64), "bool": np.array([True, False]), "text": np.array(["ab", "c"]),
           "empty": np.zeros((0, 3)), "record": np.zeros(2, dtype=[("a", "<i4"), ("b", "<f8")]),
           "scalar": np.float64(1.5), "nested": [np.uint16(7), (1, "x"), {"k": np.ones(2, np.uint8)}]}


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_every_pickle_protocol_of_numpy_arrays_loads(protocol):
    loaded = loads_numpy_pickle(pickle.dumps(_ARRAYS, protocol=protocol))
    for key, value in _ARRAYS.items():
        if key == "nested":
            assert loaded[key][0] == 7 and loaded[key][1] == (1, "x")
            np.testing.assert_array_equal(loaded[key][2]["k"], value[2]["k"])
            continue
        assert type(loaded[key]) is type(value) and np.asarray(loaded[key]).dtype == np.asarray(value).dtype
        np.testing.assert_array_equal(loaded[key], value)
    assert loaded["fortran"].flags.f_contiguous and loaded["f32"].flags.writeable


def _shared_nested_lists(levels: int) -> bytes:
    """level k = [level k-1, level k-1] through the memo: tiny, but 2**levels paths."""
    body = b"\x80\x02]q\x00"
    for k in range(1, levels + 1):
        body += b"(h" + bytes([k - 1]) + b"h" + bytes([k - 1]) + b"lq" + bytes([k])
    return body + b"."


def test_unpickler_budgets():
    dag = _shared_nested_lists(49)
    assert len(dag) <= 399
    start = time.perf_counter()
    with pytest.raises(UnsafePickleError, match="budget"):
        loads_numpy_pickle(dag, "dag.pkl")
    assert time.perf_counter() - start < 5
    with pytest.raises(UnsafePickleError, match="nesting deeper"):
        loads_numpy_pickle(b"(" * 5000 + b"l" * 5000 + b".", "deep.pkl")
    # a billion elements from a few bytes: a direct ndarray(...) call, a forged shape, protocol 5
    direct = b"\x80\x02cnumpy\nndarray\nJ\x00\xca\x9a\x3b\x85R."
    forged = pickle.dumps(np.zeros(7, np.uint8), protocol=2).replace(b"K\x07\x85", b"J\x00\xca\x9a\x3b\x85")
    framed = pickle.dumps(np.zeros(7, np.uint8), protocol=5)
    body = framed[11:].replace(b"K\x07\x85", b"J\x00\xca\x9a\x3b\x85")
    buffered = framed[:3] + struct.pack("<Q", len(body)) + body  # a well-formed frame around the forged shape
    assert len(direct) < 59
    for data in (direct, forged, buffered):
        with pytest.raises(UnsafePickleError):
            loads_numpy_pickle(data, "big.pkl")
    with pytest.raises(UnsafePickleError, match="bytes is more than"):
        loads_numpy_pickle(pickle.dumps(np.zeros(100)), budget=PickleBudget(max_bytes=100))
    # an object array's state is refused before numpy sees it (numpy itself can crash on it)
    evil_state = pickle.dumps(np.zeros(2), protocol=2).replace(b"X\x02\x00\x00\x00f8", b"X\x02\x00\x00\x00O8")
    assert evil_state != pickle.dumps(np.zeros(2), protocol=2)
    with pytest.raises(UnsafePickleError):
        loads_numpy_pickle(evil_state, "object.pkl")


# ---------------------------------------------------------------------- checkpoints
def _checkpoint(tmp_path, name, *, outputs=62, whitening=None, width=0.5, edit=None):
    from ddfa.morphable.params import Whitening
    from ddfa.nets.checkpoint import make_ddfa_checkpoint
    from ddfa.nets.mobilenet_v1 import MobileNetV1

    torch.manual_seed(0)
    white = whitening or Whitening(np.zeros(62, np.float32), np.ones(62, np.float32), "custom")
    ckpt = make_ddfa_checkpoint(MobileNetV1(width=width, num_outputs=outputs), arch="mobilenet_v1", whitening=white,
                                width=width)
    if edit is not None:
        edit(ckpt)
    path = tmp_path / name
    torch.save(ckpt, path)
    return path


def test_broken_checkpoints_are_refused_at_load(tmp_path, assets_dir):
    from ddfa.morphable.params import Whitening

    def width_abc(ckpt):
        ckpt["ddfa"]["config"]["width"] = "abc"
        ckpt["ddfa"]["width"] = "abc"

    def nan_weights(ckpt):
        ckpt["state_dict"]["fc.weight"][:] = float("nan")

    cases = {
        "head10.pth": (dict(outputs=10),
                       "fc.weight is (10, 512) instead of (62, 512), fc.bias is (10,) instead of (62,)"),
        "width.pth": (dict(edit=width_abc), "cannot be built with config"),
        "white_shape.pth": (dict(whitening=Whitening(np.zeros(10, np.float32), np.ones(10, np.float32))),
                            "whitening has shapes (10,)"),
        "white_nan.pth": (dict(whitening=Whitening(np.full(62, np.nan, np.float32), np.ones(62, np.float32))),
                          "whitening holds NaN"),
        "white_std.pth": (dict(whitening=Whitening(np.zeros(62, np.float32), np.zeros(62, np.float32))),
                          "standard deviations <= 0"),
        "nan.pth": (dict(edit=nan_weights), "NaN or infinite values (tensor fc.weight)"),
    }
    for name, (kwargs, expected) in cases.items():
        path = _checkpoint(tmp_path, name, **kwargs)
        with pytest.raises(AssetError) as info:
            ddfa.create_model(str(path), assets=assets_dir, backend="torch")
        assert str(path) in str(info.value) and expected in str(info.value), str(info.value)
        assert str(info.value).endswith(expected) or "\n" not in str(info.value)


# ---------------------------------------------------------------------- the converted-model cache
def test_tampered_onnx_cache_is_rebuilt_not_trusted(tmp_path, monkeypatch, assets_dir, pipeline_golden):
    from ddfa.nets.onnx_backend import export_onnx

    monkeypatch.setenv("DDFA_CACHE", str(tmp_path / "cache"))
    crops = pipeline_golden["crop"]
    first = ddfa.create_model("mb05", assets=assets_dir, backend="onnxruntime")
    reference = first.predict_whitened(crops)
    (cached,) = (tmp_path / "cache" / "models").glob("regressor-*/model.onnx")
    manifest_path = cached.with_name("manifest.json")
    assert json.loads(manifest_path.read_text())["files"]["model.onnx"] == \
        hashlib.sha256(cached.read_bytes()).hexdigest()
    # a model that moves every landmark
    evil = ddfa.create_model("mb05", assets=assets_dir, backend="torch").net
    with torch.no_grad():
        evil.fc.bias += 0.5
    evil_bytes = export_onnx(evil, torch.zeros(1, 3, 120, 120), None, output_names=("params",),
                             dynamic_axes={"input": {0: "batch"}, "params": {0: "batch"}})
    for rewrite_manifest in (False, True):  # a stale manifest; then one forged to match
        cached.write_bytes(evil_bytes)
        if rewrite_manifest:
            meta = json.loads(manifest_path.read_text())
            meta["files"]["model.onnx"] = hashlib.sha256(evil_bytes).hexdigest()
            manifest_path.write_text(json.dumps(meta))
        again = ddfa.create_model("mb05", assets=assets_dir, backend="onnxruntime")
        np.testing.assert_allclose(again.predict_whitened(crops), reference, atol=1e-5)
        assert cached.read_bytes() != evil_bytes  # rebuilt and overwritten


# ---------------------------------------------------------------------- errors
def test_every_error_class_lives_in_ddfa_errors():
    import ddfa.errors as errors
    from ddfa.eval.pose import ConventionError
    from ddfa.train.trainer import TrainingError
    from ddfa.video.io import VideoReadError, VideoWriteError

    for cls in (ConventionError, TrainingError, VideoReadError, VideoWriteError):
        assert cls.__module__ == "ddfa.errors" and issubclass(cls, errors.DdfaError)
    error = errors.OutputError("out: cannot write (disk full)", errno=errno.ENOSPC)
    assert isinstance(error, OSError) and error.errno == errno.ENOSPC and str(error) == "out: cannot write (disk full)"
    assert errors.one_line("a\nddfa align: 99 image(s)\r\x1b[2K") == "a\\nddfa align: 99 image(s)\\r\\x1b[2K"
