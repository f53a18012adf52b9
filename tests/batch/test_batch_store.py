"""The output folder on its own: shards commit atomically (an interrupted commit is never read and
is cleaned up), any fsspec location works, 5-point detections round-trip."""

from __future__ import annotations

import numpy as np
import pytest

import ddfa
from ddfa.io.batch import BatchOutput, ImageResult, column_array, results_to_tables


@pytest.fixture(scope="module")
def results(aligner, mixed_folder):
    """Real results: two photos, the photo without a face, and a broken file."""
    out = []
    for path in (mixed_folder.photos[1], mixed_folder.photos[3], mixed_folder.no_face):
        out.append(ImageResult.from_faces(str(path), ddfa.read_image(path).shape, aligner(str(path))))
    try:
        ddfa.read_image(mixed_folder.broken[0])
    except ddfa.ImageReadError as exc:
        out.append(ImageResult.failure(str(mixed_folder.broken[0]), exc))
    return out


def _tables(results):
    return results_to_tables(results, model="mb05", detector="faceboxes", version=ddfa.__version__)


@pytest.mark.parametrize("where", ["local", "memory"])
def test_interrupted_commit_is_invisible_then_cleaned(tmp_path, results, where, monkeypatch):
    root = str(tmp_path / "out") if where == "local" else f"memory://ddfa-test-{tmp_path.name}/out"
    output = BatchOutput(root)
    output.write_shard("part-a-000000.parquet", _tables(results[:2]))
    # the second shard dies after its faces part, before its images part (the commit)
    real_write = BatchOutput._write_bytes

    def crash_on_commit(self, path, data):
        if "/images/" in path:
            raise KeyboardInterrupt
        real_write(self, path, data)

    monkeypatch.setattr(BatchOutput, "_write_bytes", crash_on_commit)
    with pytest.raises(KeyboardInterrupt):
        output.write_shard("part-a-000001.parquet", _tables(results[2:] + results[:1]))
    monkeypatch.undo()
    output.write_json("_batch.json", {"options": {}})
    faces = ddfa.io.read_batch(root)
    expected_faces = sum(r.num_faces for r in results[:2])
    assert faces.num_rows == expected_faces  # the uncommitted faces part is not read
    assert ddfa.io.read_batch(root, "failures").num_rows == 0
    assert sorted(ddfa.io.read_batch(root, "images").column("path").to_pylist()) == sorted(r.path for r in results[:2])
    assert output.cleanup() == {"temporary": 0, "uncommitted": 2}  # its faces and failures parts
    assert output.committed() == ["part-a-000000.parquet"]
    # the re-run commits that shard again: every image exactly once
    output.write_shard("part-b-000000.parquet", _tables(results[2:]))
    images = ddfa.io.read_batch(root, "images", as_pandas=True)
    assert sorted(images["path"]) == sorted(r.path for r in results)
    assert str(images["num_faces"].dtype) == "Int32"
    by_path = images.set_index("path")
    assert by_path.loc[results[2].path, "num_faces"] == 0 and by_path.loc[results[2].path, "status"] == "ok"
    assert by_path.loc[results[3].path, "status"] == "failed" and by_path["num_faces"].isna().sum() == 1
    assert ddfa.io.read_batch(root).num_rows == sum(r.num_faces for r in results)


def test_arrays_and_keypoints_round_trip(tmp_path, results, aligner, mixed_folder):
    faces = aligner(str(mixed_folder.photos[1]))  # several faces
    assert len(faces) >= 2
    # a detector with 5 points (eye centres, nose tip, mouth corners from the landmarks here)
    faces[0].keypoints5 = np.stack([faces[0].landmarks[36:42, :2].mean(0), faces[0].landmarks[42:48, :2].mean(0),
                                    faces[0].landmarks[30, :2], faces[0].landmarks[48, :2], faces[0].landmarks[54, :2]])
    path = str(mixed_folder.photos[1])
    record = ImageResult.from_faces(path, ddfa.read_image(path).shape, faces)
    output = BatchOutput(tmp_path / "out")
    output.write_shard("part-x-000000.parquet", _tables([record]))
    table = ddfa.io.read_batch(tmp_path / "out")
    keypoints = column_array(table, "keypoints5")
    np.testing.assert_array_equal(keypoints[0], faces[0].keypoints5.astype(np.float32))
    assert np.isnan(keypoints[1:]).all()
    np.testing.assert_array_equal(column_array(table, "landmarks_68"), np.stack([f.landmarks for f in faces]))
    np.testing.assert_array_equal(column_array(table, "params"), np.stack([f.params for f in faces]))
    np.testing.assert_array_equal(column_array(table, "face_index"), np.arange(len(faces)))
    np.testing.assert_allclose(column_array(table, "yaw"), [f.pose.yaw for f in faces])


def test_spec_defaults_are_the_facades():
    """A run built from ``AlignerSpec()`` in Python aligns as ``FaceAligner()`` and ``ddfa batch``
    do (it used to default to FaceBoxes while everything else had moved to YuNet)."""
    import inspect

    from ddfa.batch import AlignerSpec
    from ddfa.cli.main import build_parser

    facade = inspect.signature(ddfa.FaceAligner).parameters
    assert AlignerSpec().detector == facade["detector"].default == "yunet"
    args = build_parser().parse_args(["batch", "in", "--output", "out"])
    assert AlignerSpec().detector == args.detector


def test_refined_faces_fill_uncertainty_and_confidence_and_old_shards_still_read(tmp_path, aligner, mixed_folder):
    """``uncertainty``/``confidence`` columns (schema 1.1): the refined faces' values, null for faces
    aligned without refinement and for every row of a shard written before the columns existed."""
    import pyarrow.parquet as pq

    path = str(mixed_folder.photos[1])
    shape = ddfa.read_image(path).shape
    refined = aligner(path, refine="flip")
    plain = aligner(path)
    output = BatchOutput(tmp_path / "out")
    output.write_shard("part-x-000000.parquet", _tables([ImageResult.from_faces(path, shape, refined)]))
    old = _tables([ImageResult.from_faces(path + "#old", shape, plain)])  # a 1.0 shard: no such columns
    old["faces"] = old["faces"].drop_columns(["uncertainty", "confidence"])
    output.write_shard("part-x-000001.parquet", old)
    assert "uncertainty" not in pq.read_schema(tmp_path / "out/faces/part-x-000001.parquet").names
    table = ddfa.io.read_batch(tmp_path / "out")
    assert table.num_rows == len(refined) + len(plain)
    uncertainty, confidence = column_array(table, "uncertainty"), column_array(table, "confidence")
    np.testing.assert_allclose(uncertainty[:len(refined)], [f.uncertainty for f in refined], rtol=1e-6)
    np.testing.assert_allclose(confidence[:len(refined)], [f.confidence for f in refined], rtol=1e-6)
    assert np.isnan(uncertainty[len(refined):]).all() and np.isnan(confidence[len(refined):]).all()
    only = ddfa.io.read_batch(tmp_path / "out", columns=["path", "confidence"])
    assert only.column_names == ["path", "confidence"] and only.num_rows == table.num_rows
