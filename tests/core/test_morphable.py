"""Morphable model, parameter layout and frames against the original implementation's outputs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ddfa.morphable import frames, load_whitening, split_params


@pytest.fixture(scope="module")
def recon(golden_dir):
    return dict(np.load(golden_dir / "reconstruction.npz"))


def _chw(points):
    """(B, N, 3) -> (B, 3, N), the golden layout."""
    return np.swapaxes(points, 1, 2)


def test_model_sizes_and_landmarks(noneck_model, full_model):
    assert noneck_model.num_vertices == 38365 and full_model.num_vertices == 53215
    assert noneck_model.triangles.shape == (76073, 3) and full_model.triangles.shape == (105840, 3)
    assert noneck_model.triangles.min() == 0 and noneck_model.triangles.max() == 38364
    assert full_model.triangles.min() == 0 and full_model.triangles.max() == 53214
    # the 68 landmarks are the same physical vertices in both models
    np.testing.assert_array_equal(
        noneck_model.vertex_ids_in_full[noneck_model.landmark_vertices], full_model.landmark_vertices
    )
    np.testing.assert_array_equal(noneck_model.mean, full_model.mean[noneck_model.vertex_ids_in_full])


def test_v2_crop_frame_parity(recon, noneck_model):
    params = recon["params"]
    sparse = frames.v2_depth(frames.model_to_crop(noneck_model.landmarks(params)))
    dense = frames.v2_depth(frames.model_to_crop(noneck_model.vertices(params)))
    np.testing.assert_allclose(_chw(sparse), recon["v2_landmarks"], atol=1e-4, rtol=0)
    np.testing.assert_allclose(_chw(dense), recon["v2_dense"], atol=1e-4, rtol=0)


def test_v1_frames_parity(recon, full_model):
    params = recon["params"]
    np.testing.assert_allclose(_chw(full_model.landmarks(params)), recon["v1_landmarks_raw"], atol=1e-4, rtol=0)
    crop = frames.model_to_crop(full_model.vertices(params))
    np.testing.assert_allclose(_chw(frames.v1_crop_frame(crop)), recon["v1_dense"], atol=1e-4, rtol=0)
    sparse_crop = frames.model_to_crop(full_model.landmarks(params))
    np.testing.assert_allclose(_chw(frames.v1_crop_frame(sparse_crop)), recon["v1_landmarks"], atol=1e-4, rtol=0)


def test_image_frame_parity(recon, noneck_model):
    params, rois = recon["params"], recon["roi_box"]
    image = frames.model_to_image(noneck_model.landmarks(params), rois)
    np.testing.assert_allclose(_chw(frames.v2_depth(image)), recon["v2_landmarks_img"], atol=1e-3, rtol=1e-6)
    v1 = frames.v1_image_frame(image, rois)
    np.testing.assert_allclose(_chw(v1), recon["v1_landmarks_img"], atol=1e-3, rtol=1e-6)
    # sparse and dense z share one origin in ddfa's frame (unlike V2's per-set min shift)
    dense = frames.model_to_image(noneck_model.vertices(params), rois)
    np.testing.assert_allclose(dense[:, noneck_model.landmark_vertices], image, atol=1e-3)
    np.testing.assert_allclose(frames.image_to_crop(image, rois), frames.model_to_crop(noneck_model.landmarks(params)),
                               atol=1e-3)


def test_torch_reconstruction_equals_numpy(recon, noneck_model):
    params = recon["params"]
    torch_model = noneck_model.to_torch()
    p = torch.from_numpy(params)
    np.testing.assert_allclose(torch_model(p).numpy(), noneck_model.landmarks(params), atol=1e-4)
    np.testing.assert_allclose(torch_model(p, dense=True).numpy(), noneck_model.vertices(params), atol=1e-3)
    np.testing.assert_allclose(noneck_model.vertices(p).numpy(), noneck_model.vertices(params), atol=1e-3)
    ids = torch.tensor([0, 100, 38364])
    np.testing.assert_allclose(torch_model(p, vertex_ids=ids).numpy(),
                               noneck_model.vertices(params)[:, [0, 100, 38364]], atol=1e-3)
    # single vector in, single set out
    assert noneck_model.landmarks(params[0]).shape == (68, 3)


def test_whitening_and_layout(store, pipeline_golden):
    v2 = load_whitening(store, "v2")
    v1 = load_whitening(store, "v1")
    np.testing.assert_allclose(v2.dewhiten(pipeline_golden["param_raw"]), pipeline_golden["param"],
                               rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(v2.whiten(v2.dewhiten(pipeline_golden["param_raw"])), pipeline_golden["param_raw"],
                               atol=1e-4)
    assert not np.allclose(v1.mean, v2.mean)
    pose, shape, expression = split_params(pipeline_golden["param"])
    assert pose.shape == (9, 3, 4) and shape.shape == (9, 40) and expression.shape == (9, 10)
    np.testing.assert_array_equal(pose[0, 1], pipeline_golden["param"][0, 4:8])
    with pytest.raises(ValueError, match="62"):
        split_params(np.zeros((2, 61)))


def test_documented_triangle_orientation(noneck_model, full_model):
    """Front-facing triangles have a positive signed area in the image frame (y down)."""
    for model in (noneck_model, full_model):
        params = np.zeros(62, np.float32)
        params[[0, 5, 10]] = 5e-4  # frontal, s = 5e-4
        params[[3, 7]] = 60
        points = frames.model_to_image(model.vertices(params), np.array([0, 0, 120, 120.0]))
        tri = points[model.triangles]
        area = (tri[:, 1, 0] - tri[:, 0, 0]) * (tri[:, 2, 1] - tri[:, 0, 1]) - (
            tri[:, 2, 0] - tri[:, 0, 0]) * (tri[:, 1, 1] - tri[:, 0, 1])
        # triangles around the nose, mouth corners and chin face the camera (the jaw contour
        # points 0-16 except the chin sit on surfaces seen edge-on)
        for landmark in (27, 30, 33, 48, 54, 8):
            around = np.any(model.triangles == model.landmark_vertices[landmark], axis=1)
            assert around.sum() >= 4 and np.all(area[around] > 0), landmark


def test_cached_model_and_patches_equal_a_fresh_build_and_are_rebuilt_when_tampered(tmp_path, monkeypatch, store):
    """The no-neck model and the landmarks' normal patches are read back from the cache of
    converted files: same arrays as built from the asset files; a changed cache file is rebuilt."""
    import ddfa
    from ddfa.morphable.model import _build_arrays, load_morphable_model
    from ddfa.render.visibility import NORMAL_RADIUS, landmark_patches, vertex_patches

    monkeypatch.setenv("DDFA_CACHE", str(tmp_path))
    fresh = _build_arrays(store, "noneck")
    ddfa.clear_caches()
    built = load_morphable_model(store)  # a miss: built and written to the cache
    (entry,) = (tmp_path / "models").glob("morphable-noneck-*")
    ddfa.clear_caches()
    read = load_morphable_model(store)  # read back
    assert read is not built and len(read.content_key) == 64 and read.content_key == built.content_key
    for model in (built, read):
        for name, array in fresh.items():
            got = getattr(model, name)
            assert got.dtype == array.dtype and not got.flags.writeable
            np.testing.assert_array_equal(got, array)

    patches = landmark_patches(read)
    assert list((tmp_path / "models").glob("patches-noneck-*"))
    expected = vertex_patches(np.asarray(fresh["mean"], np.float64), fresh["landmark_vertices"], NORMAL_RADIUS,
                              fresh["triangles"])
    ddfa.clear_caches()
    again = landmark_patches(load_morphable_model(store))
    for got in (patches, again):
        for field in ("members", "starts", "counts", "triangles", "corners"):
            np.testing.assert_array_equal(getattr(got, field), getattr(expected, field))
        np.testing.assert_array_equal(got.corners, fresh["triangles"][got.triangles].T)  # a row per corner

    data = bytearray((entry / "arrays.bin").read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped byte in the basis
    (entry / "arrays.bin").write_bytes(bytes(data))
    ddfa.clear_caches()
    np.testing.assert_array_equal(load_morphable_model(store).basis, fresh["basis"])
