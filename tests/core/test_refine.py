"""Test-time refinement: passes, combination, symmetry under mirroring, benefit on real crops."""

from __future__ import annotations

import numpy as np
import pytest

import ddfa
from ddfa.errors import InputError
from ddfa.morphable.frames import model_to_image
from ddfa.pipeline.refine import (
    REFINE_TRANSFORMS,
    CropTransform,
    crop_exact,
    pass_crops,
    transform_rois,
)


@pytest.fixture(scope="module")
def emma(example_images):
    return ddfa.read_image(example_images["emma.jpg"])


def test_option_is_checked_and_none_is_the_plain_pipeline(aligner, emma):
    with pytest.raises(InputError, match="refine"):
        ddfa.AlignOptions(refine="twice")
    plain = aligner(emma, crop_policy="landmarks")
    none = aligner(emma, crop_policy="landmarks", refine="none")
    np.testing.assert_array_equal(plain[0].params, none[0].params)
    assert none[0].uncertainty is None and none[0].confidence is None


def test_pass_crops_are_the_plain_crop_its_mirror_and_exact_jitters(emma):
    roi = np.array([[150.0, 60.0, 390.0, 300.0]])
    transforms = REFINE_TRANSFORMS["full"]
    crops = pass_crops(emma, roi, transforms)[0]
    assert crops.shape == (len(transforms), 120, 120, 3)
    from ddfa.pipeline.crop import crop_face

    np.testing.assert_array_equal(crops[0], crop_face(emma, roi[0]))  # the plain pass, byte for byte
    np.testing.assert_array_equal(crops[1], crops[0][:, ::-1])  # its mirror image
    rois = transform_rois(roi, transforms)[0]
    for k, t in enumerate(transforms):
        side = rois[k, 2] - rois[k, 0]
        assert side == pytest.approx(240.0 * t.scale)
        assert (rois[k, 0] + rois[k, 2]) / 2 == pytest.approx(270.0 + 240.0 * t.dx)
        assert (rois[k, 1] + rois[k, 3]) / 2 == pytest.approx(180.0 + 240.0 * t.dy)
    # a shift by a whole number of crop pixels is the same crop moved (integral roi: no resampling)
    shifted = crop_exact(emma, roi[0] + np.array([16.0, 0.0, 16.0, 0.0]))
    np.testing.assert_array_equal(shifted[:, :-8], crop_exact(emma, roi[0])[:, 8:])


def test_refined_faces_are_consistent_and_carry_uncertainty(aligner, emma):
    plain = aligner(emma, crop_policy="landmarks")[0]
    for mode in ("flip", "full"):
        face = aligner(emma, crop_policy="landmarks", refine=mode)[0]
        # landmarks, mesh and pose all follow from the refined parameters
        np.testing.assert_allclose(
            model_to_image(aligner.morphable_model.landmarks(face.params.astype(np.float64)), face.roi_box),
            face.landmarks, atol=1e-3)
        size = np.sqrt(np.prod(np.ptp(plain.landmarks[:, :2], axis=0)))
        moved = np.linalg.norm(face.landmarks[:, :2] - plain.landmarks[:, :2], axis=1).mean() / size
        assert moved < 0.02  # a refinement, not a different face
        assert 0 < face.uncertainty < 0.05 and 0 <= face.confidence <= 1
        assert face.confidence > 0.8  # a clear frontal face
        record = face.to_dict()
        assert record["uncertainty"] == pytest.approx(face.uncertainty) and "confidence" in record


def test_flip_refinement_commutes_with_mirroring_the_photo(aligner, emma):
    """Refining a mirrored photo (mirrored roi) gives the mirrored refined face: the flip, the
    68-point permutation, the pose mirror and the frames all fit together.

    The flip-refined predictor is exactly mirror-symmetric in the crop's pixels (column j <->
    119 - j). ddfa's crop -> image map (3DDFA_V2's) sends crop coordinate x to ``x·k + sx``
    (k = roi side / 120), so in the photo the mirror axis of the pipeline is at ``(W - k) / 2``:
    a point at X maps to ``W - k - X`` (not ``W - 1 - X``; the two differ by k - 1 = 1 px here).
    """
    height, width = emma.shape[:2]
    roi = np.array([[151.0, 62.0, 391.0, 302.0]])  # integral: both crops are exact mirror images
    mirrored_roi = np.array([[width - roi[0, 2], roi[0, 1], width - roi[0, 0], roi[0, 3]]])
    flip = ddfa.FaceAligner(assets=aligner.assets, detector=None, refine="flip")
    face = flip.align_rois(emma, roi)[0]
    mirror_face = flip.align_rois(np.ascontiguousarray(emma[:, ::-1]), mirrored_roi)[0]
    from ddfa.morphable.mirror import IBUG68_MIRROR

    k = (roi[0, 2] - roi[0, 0]) / 120
    expected = face.landmarks[IBUG68_MIRROR].copy()
    expected[:, 0] = width - k - expected[:, 0]
    error = np.linalg.norm(mirror_face.landmarks[:, :2] - expected[:, :2], axis=1)
    assert error.mean() < 0.3 and error.max() < 1.0  # pixels, a 240 px roi
    assert mirror_face.pose.yaw == pytest.approx(-face.pose.yaw, abs=0.5)
    assert mirror_face.uncertainty == pytest.approx(face.uncertainty, rel=0.05)


def test_transform_identity():
    assert CropTransform().is_identity_roi and not CropTransform(scale=1.05).is_identity_roi
