"""Odd and broken inputs: converted and aligned, or a clear one-line error naming the input."""

from __future__ import annotations

import json
import subprocess
import sys

import cv2
import numpy as np
import pytest

from ddfa.errors import ImageReadError, InputError
from ddfa.io.image import read_image, to_bgr_uint8


@pytest.fixture(scope="module")
def face_photo(example_images):
    return read_image(example_images["JianzhuGuo.jpg"])


@pytest.fixture(scope="module")
def reference_face(aligner, face_photo):
    faces = aligner(face_photo)
    assert len(faces) == 1
    return faces[0]


def test_grayscale_rgba_and_16bit_files_are_aligned(tmp_path, aligner, face_photo, reference_face):
    gray = cv2.cvtColor(face_photo, cv2.COLOR_BGR2GRAY)
    rgba = cv2.cvtColor(face_photo, cv2.COLOR_BGR2BGRA)
    rgba[..., 3] = 128
    deep = face_photo.astype(np.uint16) * 257
    for name, array in (("gray.png", gray), ("rgba.png", rgba), ("deep.png", deep)):
        path = tmp_path / name
        cv2.imwrite(str(path), array)
        faces = aligner(str(path))
        assert len(faces) == 1, name
        tolerance = 6.0 if name == "gray.png" else 1e-3  # gray changes the pixels themselves
        np.testing.assert_allclose(faces[0].landmarks[:, :2], reference_face.landmarks[:, :2], atol=tolerance)


def test_arrays_of_other_types_are_converted(aligner, face_photo, reference_face):
    rgb_float = face_photo[..., ::-1].astype(np.float32) / 255.0
    as_bgr = to_bgr_uint8(rgb_float, rgb=True)
    np.testing.assert_array_equal(as_bgr, face_photo)
    faces = aligner(face_photo.astype(np.uint16) * 257)
    np.testing.assert_allclose(faces[0].landmarks, reference_face.landmarks, atol=1e-3)
    assert len(aligner(cv2.cvtColor(face_photo, cv2.COLOR_BGR2GRAY))) == 1
    with pytest.raises(InputError, match="shape"):
        aligner(np.zeros((10, 10, 2), np.uint8))
    with pytest.raises(InputError, match="numpy array"):
        aligner(12345)


def test_huge_photo_works(aligner, face_photo):
    """A 10000 x 10000 photo: the detector sees a 720 x 720 copy, crops copy only their roi."""
    canvas = np.full((10000, 10000, 3), 90, np.uint8)
    face = cv2.resize(face_photo, None, fx=6, fy=6)
    canvas[3000:3000 + face.shape[0], 4000:4000 + face.shape[1]] = face
    faces = aligner(canvas)
    assert len(faces) == 1
    x1, y1, x2, y2 = faces[0].box
    assert 4000 < x1 < x2 < 4000 + face.shape[1] and 3000 < y1 < y2 < 3000 + face.shape[0]


def test_no_face_gives_empty_result(aligner):
    rng = np.random.default_rng(0)
    assert aligner(np.full((480, 640, 3), 127, np.uint8)) == []
    assert aligner(rng.integers(0, 255, (300, 200, 3), dtype=np.uint8)) == []
    assert aligner(np.zeros((1, 1, 3), np.uint8)) == []


@pytest.fixture()
def broken_files(tmp_path, example_images):
    photo = example_images["JianzhuGuo.jpg"].read_bytes()
    noise = np.random.default_rng(1).integers(0, 255, (100, 100, 3), dtype=np.uint8)
    png = cv2.imencode(".png", noise)[1].tobytes()
    files = {
        "empty.jpg": b"",
        "notes.jpg": b"this is not an image\n",
        "truncated.jpg": photo[: len(photo) // 2],
        "truncated.png": png[: len(png) // 2],
    }
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    return tmp_path


def test_read_errors_name_the_file(broken_files):
    expected = {"empty.jpg": "empty file", "notes.jpg": "not an image", "truncated.jpg": "truncated",
                "truncated.png": "truncated"}
    for name, reason in expected.items():
        with pytest.raises(ImageReadError) as info:
            read_image(broken_files / name)
        assert str(broken_files / name) in str(info.value) and reason in str(info.value)
        assert "\n" not in str(info.value)
    with pytest.raises(ImageReadError, match="no such file"):
        read_image(broken_files / "missing.jpg")
    with pytest.raises(ImageReadError, match="folder"):
        read_image(broken_files)


def test_cli_batch_goes_on_past_failures(broken_files, example_images, assets_dir, tmp_path):
    good = tmp_path / "good"
    good.mkdir()
    (good / "face.jpg").write_bytes(example_images["JianzhuGuo.jpg"].read_bytes())
    cv2.imwrite(str(good / "blank.png"), np.full((200, 300, 3), 200, np.uint8))
    out = tmp_path / "out"
    inputs = [str(good), str(broken_files / "empty.jpg"), str(broken_files / "notes.jpg"),
              str(broken_files / "truncated.jpg"), str(broken_files / "truncated.png"), str(tmp_path / "missing.jpg")]
    result = subprocess.run(
        [sys.executable, "-m", "ddfa.cli.main", "align", *inputs, "--output", str(out), "--assets", str(assets_dir),
         "--quiet"],
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert "2 image(s) aligned, 1 face(s) found, 5 failure(s)" in result.stdout
    (run,) = (out / ".ddfa" / "runs").iterdir()
    failures = json.loads((run / "failures.json").read_text())
    assert sorted(f["path"].rsplit("/", 1)[-1] for f in failures) == sorted(
        ["empty.jpg", "notes.jpg", "truncated.jpg", "truncated.png", "missing.jpg"])
    assert json.loads((out / "good/face.jpg.json").read_text())["faces"][0]["score"] > 0.9
    assert json.loads((out / "good/blank.png.json").read_text())["faces"] == []
    assert (out / "good/face.jpg_2d_sparse.png").is_file() and (out / "good/blank.png_2d_sparse.png").is_file()
    for line in result.stdout.splitlines():
        if line.strip().startswith("failed:"):
            assert str(tmp_path) in line


def test_missing_assets_is_one_line_error(tmp_path, example_images):
    result = subprocess.run(
        [sys.executable, "-m", "ddfa.cli.main", "align", str(example_images["JianzhuGuo.jpg"]), "--output",
         str(tmp_path / "out"), "--assets", str(tmp_path / "no-assets")],
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().startswith("ddfa: error:") and "--assets" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
