"""End-to-end parity with the original 3DDFA_V2 pipeline on the shared photos."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from engines import ENGINES, engine_params, engine_tolerance

import ddfa
from ddfa.errors import InputError
from ddfa.morphable.frames import v2_depth
from ddfa.pipeline import crop_face, roi_from_box, roi_from_landmarks


def _chw(points):
    return np.swapaxes(np.asarray(points), -1, -2)


@pytest.fixture(scope="module")
def golden_images(pipeline_golden, example_images):
    return [str(example_images[name]) for name in pipeline_golden["image_names"]]


def test_rois_and_crops_are_identical(pipeline_golden, golden_images):
    g = pipeline_golden
    np.testing.assert_allclose(roi_from_box(g["fb_box"]), g["roi_box"], atol=1e-3)
    np.testing.assert_allclose(roi_from_landmarks(_chw(g["lmk68"])), g["track_roi_box"], atol=1e-3)
    for k, image_index in enumerate(g["face_image_idx"]):
        image = ddfa.read_image(golden_images[image_index])
        np.testing.assert_array_equal(crop_face(image, g["roi_box"][k]), g["crop"][k])
        np.testing.assert_array_equal(crop_face(image, g["track_roi_box"][k]), g["track_crop"][k])


def _assert_boxes(actual, expected, tol, what, rel=None):
    """Boxes within ``box_px + rel * side`` (``rel``: the engine's box tolerance by default; rois
    made from landmarks take the landmarks' one)."""
    expected = np.asarray(expected, np.float64)
    side = (expected[:, 2] - expected[:, 0] + expected[:, 3] - expected[:, 1])[:, None] / 2
    err = np.abs(np.asarray(actual, np.float64) - expected)
    limit = tol.box_px + (tol.box_rel if rel is None else rel) * side
    assert np.all(err <= limit), f"{what}: max error {err.max():.4g} px"


def _assert_points(actual_chw, expected_chw, rois, tol, what):
    """(F, 3, N) points against the reference, within the engine's landmark tolerance."""
    side = np.asarray(rois, np.float64)[:, 2] - np.asarray(rois, np.float64)[:, 0]
    limit = tol.landmarks_px + tol.landmarks_rel * side[:, None, None]
    err = np.abs(np.asarray(actual_chw, np.float64) - expected_chw)
    rel = (err / side[:, None, None]).max()
    assert np.all(err <= limit), f"{what}: max error {err.max():.4g} px ({rel:.3%} of the roi side)"


@pytest.mark.parametrize("engine", engine_params())
def test_regressor_outputs_equal_reference(engine, assets_dir, pipeline_golden):
    tol = engine_tolerance(engine)
    regressor = ddfa.create_model("mb05", assets=assets_dir, **ENGINES[engine])
    assert (regressor.backend, regressor.precision) == (ENGINES[engine]["backend"], ENGINES[engine]["precision"])
    std = regressor.whitening.std
    for crops, raw, params in (("crop", "param_raw", "param"), ("track_crop", "track_param_raw", "track_param")):
        np.testing.assert_allclose(regressor.predict_whitened(pipeline_golden[crops]), pipeline_golden[raw],
                                   atol=tol.params_whitened)
        np.testing.assert_allclose((regressor(pipeline_golden[crops]) - pipeline_golden[params]) / std, 0,
                                   atol=tol.params_whitened)


@pytest.mark.parametrize("engine", engine_params())
def test_pipeline_equals_reference(engine, engine_aligners, pipeline_golden, golden_images):
    aligner, tol = engine_aligners(engine), engine_tolerance(engine)
    g = pipeline_golden
    per_image = aligner.align_batch(golden_images)
    faces = [face for image_faces in per_image for face in image_faces]
    assert [len(f) for f in per_image] == [int((g["face_image_idx"] == i).sum()) for i in range(4)]
    np.testing.assert_array_equal([f.image_index for f in faces], g["face_image_idx"])
    _assert_boxes([f.box for f in faces], g["fb_box"], tol, "boxes")
    np.testing.assert_allclose([f.score for f in faces], g["fb_score"], atol=tol.score)
    _assert_boxes([f.roi_box for f in faces], g["roi_box"], tol, "rois")
    std = aligner.regressor.whitening.std
    np.testing.assert_allclose((np.stack([f.params for f in faces]) - g["param"]) / std, 0, atol=tol.params_whitened)
    landmarks = np.stack([f.landmarks for f in faces])
    _assert_points(_chw(v2_depth(landmarks)), g["lmk68"], g["roi_box"], tol, "landmarks")
    first = [image_faces[0] for image_faces in per_image]
    dense = np.stack([f.vertices for f in first])
    assert dense.shape == (4, 38365, 3)
    first_rois = g["roi_box"][[int(np.flatnonzero(g["face_image_idx"] == i)[0]) for i in range(4)]]
    _assert_points(_chw(v2_depth(dense)), g["dense_first"], first_rois, tol, "dense vertices")
    # pose: the rotation is V2's; the angles are AFLW-convention angles of that rotation
    np.testing.assert_allclose([f.rotation for f in faces], g["pose_P"][:, :, :3],
                               atol=1e-4 if tol.landmarks_rel == 0 else 0.05)


@pytest.mark.parametrize("engine", engine_params("onnxruntime", "openvino-f32", "openvino-bf16"))
def test_two_step_refinement_equals_reference_track_step(engine, engine_aligners, pipeline_golden, golden_images):
    aligner, tol = engine_aligners(engine), engine_tolerance(engine)
    g = pipeline_golden
    faces = [f for fs in aligner.align_batch(golden_images, crop_policy="landmarks") for f in fs]
    _assert_boxes([f.roi_box for f in faces], g["track_roi_box"], tol, "track rois", rel=tol.landmarks_rel)
    _assert_points(_chw(v2_depth(np.stack([f.landmarks for f in faces]))), g["track_lmk68"], g["track_roi_box"], tol,
                   "track landmarks")
    # the tracking entry point gives the same from the step-1 landmarks' rois
    image = ddfa.read_image(golden_images[1])
    emma = g["face_image_idx"] == 1
    tracked = aligner.align_rois(image, g["track_roi_box"][emma])
    _assert_points(_chw(v2_depth(np.stack([f.landmarks for f in tracked]))), g["track_lmk68"][emma],
                   g["track_roi_box"][emma], tol, "tracked landmarks")


def test_batch_single_and_given_boxes_agree(aligner, golden_images, pipeline_golden):
    batch = aligner.align_batch(golden_images[:3])
    for i, path in enumerate(golden_images[:3]):
        single = aligner(path)
        np.testing.assert_allclose([f.landmarks for f in single], [f.landmarks for f in batch[i]], atol=1e-3)
    g = pipeline_golden
    emma = g["face_image_idx"] == 1
    given = aligner(golden_images[1], boxes=g["fb_box"][emma])
    np.testing.assert_allclose([f.landmarks for f in given], [f.landmarks for f in batch[1]], atol=1e-3)
    assert all(f.score == 1.0 for f in given)
    limited = aligner(golden_images[1], max_faces=1)
    assert len(limited) == 1 and limited[0].score == pytest.approx(g["fb_score"][emma].max())
    assert aligner(golden_images[1], max_faces=0) == []
    with pytest.raises(InputError, match="crop_policy"):
        aligner(golden_images[0], crop_policy="nose")
    with pytest.raises(InputError, match="box lists"):
        aligner.align_batch(golden_images[:2], boxes=[g["fb_box"][:1]])


def test_eager_and_lazy_dense_agree_and_full_mesh(assets_dir, aligner, golden_images):
    eager = aligner(golden_images[0], dense=True)[0]
    lazy = aligner(golden_images[0])[0]
    np.testing.assert_allclose(eager.vertices, lazy.vertices, atol=1e-3)
    np.testing.assert_allclose(eager.vertices[aligner.morphable_model.landmark_vertices], eager.landmarks, atol=1e-3)
    full = ddfa.FaceAligner(assets=assets_dir, mesh="full", detector="faceboxes", precision="f32")(golden_images[0])[0]
    assert full.vertices.shape == (53215, 3) and full.triangles.shape == (105840, 3)
    np.testing.assert_allclose(full.vertices[aligner.morphable_model.vertex_ids_in_full], lazy.vertices, atol=1e-3)
    data = lazy.to_dict()
    assert set(data) == {"box", "score", "roi_box", "params", "landmarks_68", "pose", "landmarks_visible"}
    assert len(data["params"]) == 62 and np.shape(data["landmarks_68"]) == (68, 3)


def test_checkpoint_layouts_load(tmp_path, assets_dir, pipeline_golden):
    """V1 layout (module. prefixes, fc head) and ddfa layout load through the same factory."""
    from ddfa.nets.checkpoint import make_ddfa_checkpoint

    reference = ddfa.create_model("mb05", assets=assets_dir, backend="torch")
    state = {"module." + k: v for k, v in reference.net.state_dict().items()}
    v1_path = tmp_path / "phase1_mb05.pth.tar"
    torch.save({"state_dict": state, "epoch": 1}, v1_path)
    v1 = ddfa.create_model(str(v1_path), assets=assets_dir, backend="torch")
    assert v1.whitening.name == "v1"  # a bare v1 checkpoint is read with 3DDFA's whitening
    as_v2 = ddfa.create_model(str(v1_path), assets=assets_dir, backend="torch", whitening="v2")
    np.testing.assert_allclose(as_v2(pipeline_golden["crop"]), reference(pipeline_golden["crop"]), rtol=1e-5, atol=1e-3)
    own = tmp_path / "ddfa.pth"
    torch.save(make_ddfa_checkpoint(reference.net, arch="mobilenet_v1", width=0.5, whitening=reference.whitening,
                                    epoch=3), own)
    loaded = ddfa.create_model(str(own), assets=assets_dir, backend="torch")
    np.testing.assert_array_equal(loaded(pipeline_golden["crop"]), reference(pipeline_golden["crop"]))
    with pytest.raises(InputError, match="unknown model"):
        ddfa.create_model("no-such-model", assets=assets_dir)
    with pytest.raises(ddfa.AssetError, match="mb1_120x120.pth"):
        ddfa.create_model("mb1", assets=assets_dir)
    assert {"mb05", "mb1", "3ddfa-v1"} <= set(ddfa.list_models())
