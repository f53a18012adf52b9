"""Mirror maps of the morphable model: 68-point permutation, dense vertex map, mirrored parameters;
and the exact re-expression of a refinement pass's parameters in the face's roi frame."""

from __future__ import annotations

import numpy as np
import pytest

from ddfa.morphable.frames import model_to_crop, model_to_image
from ddfa.morphable.mirror import IBUG68_MIRROR, mirror_maps, mirror_params, mirror_points
from ddfa.morphable.params import pose_matrix
from ddfa.pipeline.refine import CropTransform, pass_params_in_roi, transform_rois


@pytest.fixture(scope="module")
def maps(noneck_model):
    return mirror_maps(noneck_model)


@pytest.fixture(scope="module")
def random_params(store, noneck_model):
    from ddfa.morphable.params import load_whitening
    from ddfa.train.synth import SynthConfig, sample_params

    rng = np.random.default_rng(4)
    whitening = load_whitening(store, "v2")
    return np.stack([sample_params(rng, whitening, noneck_model, SynthConfig()) for _ in range(12)]).astype(np.float64)


def test_ibug_permutation_is_a_left_right_involution(noneck_model):
    perm = IBUG68_MIRROR
    assert sorted(perm) == list(range(68))
    np.testing.assert_array_equal(perm[perm], np.arange(68))
    assert set(np.flatnonzero(perm == np.arange(68))) == {8, 27, 28, 29, 30, 33, 51, 57, 62, 66}  # the midline
    # on the mean face, every landmark's reflection lands on its partner (within 1% of the face width)
    mean = noneck_model.mean.astype(np.float64)
    lm = mean[noneck_model.landmark_vertices]
    plane = np.mean((lm[:, 0] + lm[perm, 0]) / 2)
    reflected = lm * [-1, 1, 1] + [2 * plane, 0, 0]
    assert np.linalg.norm(reflected[perm] - lm, axis=1).max() < 0.01 * np.ptp(mean[:, 0])


def test_vertex_map_maps_the_mirrored_mean_face_onto_itself(noneck_model, maps):
    mean = noneck_model.mean.astype(np.float64)
    width = np.ptp(mean[:, 0])
    from scipy.spatial import cKDTree

    spacing = np.median(cKDTree(mean).query(mean[::10], k=2)[0][:, 1])  # distance to the nearest other vertex
    # the plane lies within 0.5% of the width of the middle of the face
    assert abs(maps.plane_x - (mean[:, 0].min() + mean[:, 0].max()) / 2) < 0.005 * width
    # reflected mean shape vs the mean shape renumbered by the map
    reflected = mean[maps.vertex_map] * [-1, 1, 1] + [2 * maps.plane_x, 0, 0]
    distance = np.linalg.norm(reflected - mean, axis=1)
    assert np.median(distance) < 0.6 * spacing
    assert np.percentile(distance, 99) < 1.5 * spacing
    assert distance.max() < 0.03 * width
    assert np.mean(maps.vertex_map[maps.vertex_map] == np.arange(len(mean))) > 0.95  # nearly an involution
    # it agrees with the 68-point permutation: a landmark's partner vertex sits at the partner landmark
    ids = noneck_model.landmark_vertices
    gap = np.linalg.norm(mean[maps.vertex_map[ids]] - mean[ids[IBUG68_MIRROR]], axis=1)
    assert gap.max() < 0.01 * width


def test_mirrored_parameters_draw_the_mirror_image(noneck_model, maps, random_params):
    """The parameters of the flipped crop reconstruct the flipped face: pose exactly, shape and
    expression up to the basis's small asymmetry."""
    p = random_params
    mirrored = mirror_params(p, noneck_model)
    flipped_lmk = mirror_points(model_to_crop(noneck_model.landmarks(p)))
    error = np.linalg.norm((model_to_crop(noneck_model.landmarks(mirrored)) - flipped_lmk)[..., :2], axis=-1)
    assert error.mean() < 0.4 and error.max() < 1.5  # crop pixels (faces ~90 px wide)
    dense = mirror_points(model_to_crop(noneck_model.vertices(p)), permutation=maps.vertex_map)
    dense_error = np.linalg.norm((model_to_crop(noneck_model.vertices(mirrored)) - dense)[..., :2], axis=-1)
    assert np.percentile(dense_error, 99) < 1.0
    # the pose part is exact: the mean face (shape at its mean) mirrors to within the map's residual
    np.testing.assert_allclose(np.linalg.det(pose_matrix(mirrored)[:, :, :3]), np.linalg.det(pose_matrix(p)[:, :, :3]),
                               rtol=1e-9)
    twice = mirror_params(mirrored, noneck_model)
    back = np.linalg.norm((model_to_crop(noneck_model.landmarks(twice)) - model_to_crop(noneck_model.landmarks(p)))
                          [..., :2], axis=-1)
    assert back.mean() < 0.4


def test_mirror_points_round_trip():
    pts = np.random.default_rng(0).uniform(0, 120, (3, 68, 3))
    np.testing.assert_allclose(mirror_points(mirror_points(pts)), pts)
    np.testing.assert_allclose(mirror_points(pts, permutation=None)[..., 0], 119 - pts[..., 0])


def test_jittered_pass_params_keep_the_face_in_the_photo(noneck_model, random_params):
    """A pass predicted on a jittered roi, re-expressed in the face's roi, is the same face in
    the photo (exact: the roi change is absorbed by the pose)."""
    rois = np.array([[10.0, 20.0, 130.0, 140.0], [-13.5, 4.25, 287.5, 305.25], [0, 0, 120, 120]])
    transforms = (CropTransform(), CropTransform(scale=0.9), CropTransform(dx=0.05, dy=-0.05))
    p = random_params[:9].reshape(3, 3, -1)
    q = pass_params_in_roi(p, rois, transforms, noneck_model)
    pass_rois = transform_rois(rois, transforms)
    np.testing.assert_allclose(q[:, 0], p[:, 0], rtol=1e-12, atol=1e-9)
    for t in range(len(transforms)):
        np.testing.assert_allclose(model_to_image(noneck_model.vertices(q[:, t]), rois),
                                   model_to_image(noneck_model.vertices(p[:, t]), pass_rois[:, t]), atol=1e-6)
