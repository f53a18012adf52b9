"""Inputs of the batch tests: a folder mixing real photos, a photo without a face and broken
files, and ``ddfa align``'s results for the same files (the reference the tables must equal)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import pytest

import ddfa
from ddfa.cli.main import main

AFLW_PHOTOS = ("image00002.jpg", "image00004.jpg", "image00006.jpg")


def make_mixed_folder(root: Path, assets_dir: Path, data_dir: Path, more_photos: int = 0) -> SimpleNamespace:
    """Fill ``root``: 3 example photos and 3 AFLW2000-3D photos (in a sub-folder), the lower
    half of trump_hillary.jpg (suits, no face), an empty, a truncated and a non-image file, a
    text file that is not an input, and ``more_photos`` further AFLW2000-3D photos (in
    ``more/``)."""
    examples = assets_dir / "3DDFA_V2/examples/inputs"
    full = data_dir / "aflw2000-3d/AFLW2000-full"
    photos = []
    for name in ("JianzhuGuo.jpg", "emma.jpg", "trump_hillary.jpg"):
        photos.append(Path(shutil.copy(examples / name, root / name)))
    (root / "aflw").mkdir()
    for name in AFLW_PHOTOS:
        photos.append(Path(shutil.copy(full / name, root / "aflw" / name)))
    if more_photos:
        (root / "more").mkdir()
        extra = [p for p in sorted(full.glob("*.jpg")) if p.name not in AFLW_PHOTOS][:more_photos]
        photos += [Path(shutil.copy(path, root / "more" / path.name)) for path in extra]
    no_face = root / "no_face.jpg"  # a real photo's colours, blurred beyond any face
    photo = ddfa.read_image(examples / "trump_hillary.jpg")
    cv2.imwrite(str(no_face), cv2.GaussianBlur(photo, (0, 0), 40))
    broken = {root / "empty.jpg": b"", root / "truncated.jpg": (examples / "emma.jpg").read_bytes()[:6000],
              root / "not_an_image.png": b"this is not a PNG\n"}
    for path, data in broken.items():
        path.write_bytes(data)
    (root / "notes.txt").write_text("not an image suffix: never listed\n")
    return SimpleNamespace(root=root, photos=photos, no_face=no_face, broken=sorted(broken),
                           inputs=sorted(str(p) for p in [*photos, no_face, *broken]))


def align_folder(folder: SimpleNamespace, out: Path, assets_dir: Path) -> SimpleNamespace:
    """``ddfa align``'s per-image JSON for a folder of :func:`make_mixed_folder`, by absolute
    path; failures by path."""
    code = main(["align", str(folder.root), "--recursive", "--output", str(out), "--outputs", "none",
                 "--assets", str(assets_dir), "--quiet"])
    assert code == 1  # the broken files
    results = {}
    for path in out.rglob("*.json"):  # one result JSON per image; run records live under .ddfa/
        if ".ddfa" in path.relative_to(out).parts:
            continue
        record = json.loads(path.read_text())
        results[os.path.abspath(record["image"])] = record
    (failures_file,) = out.glob(".ddfa/runs/*/failures.json")
    failures = {os.path.abspath(f["path"]): f["error"] for f in json.loads(failures_file.read_text())}
    # the folder is what it claims to be
    assert set(failures) == {str(p) for p in folder.broken}
    assert len(results[str(folder.no_face)]["faces"]) == 0
    assert all(len(results[str(p)]["faces"]) >= 1 for p in folder.photos)
    return SimpleNamespace(images=results, failures=failures)


@pytest.fixture(scope="session")
def mixed_folder(tmp_path_factory, assets_dir, data_dir):
    """A folder of :func:`make_mixed_folder`: 6 photos, one without a face, 3 broken files."""
    return make_mixed_folder(tmp_path_factory.mktemp("batch_mixed"), assets_dir, data_dir)


@pytest.fixture(scope="session")
def align_reference(mixed_folder, assets_dir, tmp_path_factory):
    """``ddfa align``'s results for the mixed folder (:func:`align_folder`)."""
    return align_folder(mixed_folder, tmp_path_factory.mktemp("batch_align_ref"), assets_dir)


def assert_tables_match_align(out: Path, mixed_folder, reference) -> dict:
    """The batch tables of ``out`` hold exactly ``ddfa align``'s results; returns ``_SUCCESS``."""
    faces = ddfa.io.read_batch(out)
    images = ddfa.io.read_batch(out, "images").to_pylist()
    failures = ddfa.io.read_batch(out, "failures").to_pylist()
    # every input exactly once
    assert sorted(r["path"] for r in images) == mixed_folder.inputs
    status = {r["path"]: r for r in images}
    # failures: the broken files, with the class and message ddfa align reports
    assert sorted(f["path"] for f in failures) == sorted(reference.failures)
    for row in failures:
        assert row["error_class"] == "ImageReadError"
        assert row["message"] == reference.failures[row["path"]]
        assert status[row["path"]]["status"] == "failed" and status[row["path"]]["num_faces"] is None
    # faces: the same faces, in the same order, as ddfa align
    paths = faces.column("path").to_pylist()
    index = faces.column("face_index").to_pylist()
    assert len(set(zip(paths, index))) == len(paths)
    arrays = {name: ddfa.io.column_array(faces, name) for name in ("box", "roi_box", "params", "landmarks_68")}
    scores = ddfa.io.column_array(faces, "score")
    pose = np.stack([ddfa.io.column_array(faces, k) for k in ("yaw", "pitch", "roll")], 1)
    keypoints = ddfa.io.column_array(faces, "keypoints5")  # YuNet, the default, gives the 5 points
    assert np.isfinite(keypoints).all()
    assert set(faces.column("model").to_pylist()) == {"mb05"}
    assert set(faces.column("detector").to_pylist()) == {"yunet"}
    assert set(faces.column("ddfa_version").to_pylist()) == {ddfa.__version__}
    for key, record in reference.images.items():
        assert status[key]["status"] == "ok"
        assert (status[key]["width"], status[key]["height"]) == (record["width"], record["height"])
        assert status[key]["num_faces"] == len(record["faces"])
        rows = sorted((i for i, p in enumerate(paths) if p == key), key=lambda i: index[i])
        assert [index[i] for i in rows] == list(range(len(record["faces"])))
        for i, face in zip(rows, record["faces"]):
            np.testing.assert_allclose(arrays["landmarks_68"][i], face["landmarks_68"], atol=1e-3)
            np.testing.assert_allclose(arrays["box"][i], face["box"], atol=1e-3)
            np.testing.assert_allclose(arrays["roi_box"][i], face["roi_box"], atol=1e-3)
            np.testing.assert_allclose(arrays["params"][i], face["params"], rtol=1e-4, atol=1e-5)
            np.testing.assert_allclose(scores[i], face["score"], atol=1e-6)
            np.testing.assert_allclose(keypoints[i], face["keypoints_5"], atol=1e-3)
            np.testing.assert_allclose(pose[i], [face["pose"][k] for k in ("yaw", "pitch", "roll")], atol=1e-3)
    # _SUCCESS: options and exact counts
    success = json.loads((out / "_SUCCESS").read_text())
    counts = success["counts"]
    n_faces = [len(r["faces"]) for r in reference.images.values()]
    assert counts["inputs"] == counts["images"] == len(mixed_folder.inputs)
    assert counts["images_failed"] == len(reference.failures)
    assert counts["images_with_faces"] == sum(1 for n in n_faces if n)
    assert counts["images_without_faces"] == sum(1 for n in n_faces if not n)
    assert counts["faces"] == sum(n_faces) == faces.num_rows
    assert success["options"]["model"] == "mb05" and success["options"]["crop_policy"] == "box"
    return success


@pytest.fixture(scope="session")
def check_tables(mixed_folder, align_reference):
    """``check_tables(out)``: :func:`assert_tables_match_align` on the mixed folder."""
    return lambda out: assert_tables_match_align(out, mixed_folder, align_reference)


@pytest.fixture(scope="session")
def ray_folder(tmp_path_factory, assets_dir, data_dir):
    """``(folder, check_tables)``: the mixed folder with 14 more photos (24 inputs: enough
    shards to stop a run half way), and ``check_tables(out)`` against ``ddfa align``'s results
    for it."""
    folder = make_mixed_folder(tmp_path_factory.mktemp("batch_ray"), assets_dir, data_dir, more_photos=14)
    reference = align_folder(folder, tmp_path_factory.mktemp("batch_ray_ref"), assets_dir)
    return folder, lambda out: assert_tables_match_align(out, folder, reference)


@pytest.fixture(scope="session")
def many_photos(tmp_path_factory, data_dir):
    """32 AFLW2000-3D photos."""
    root = tmp_path_factory.mktemp("batch_many")
    for path in sorted((data_dir / "aflw2000-3d/AFLW2000-full").glob("*.jpg"))[:32]:
        shutil.copy(path, root / path.name)
    return root
