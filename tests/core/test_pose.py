"""Head pose: V2 parity on the golden faces, and ddfa's angle convention verified against the
AFLW2000-3D ground truth (pose_para)."""

from __future__ import annotations

import numpy as np
import pytest

from ddfa.errors import InputError
from ddfa.morphable import frames
from ddfa.morphable.params import join_params
from ddfa.morphable.pose import angles_to_rotation, decompose_pose, pose_angles, rotation_to_angles, v2_angles


def test_v2_pose_parity(pipeline_golden):
    scale, rotation, translation = decompose_pose(pipeline_golden["param"])
    np.testing.assert_allclose(rotation, pipeline_golden["pose_P"][:, :, :3], atol=1e-5)
    np.testing.assert_allclose(translation, pipeline_golden["pose_P"][:, :, 3], atol=1e-4)
    np.testing.assert_allclose(v2_angles(rotation), pipeline_golden["pose"], atol=1e-4)
    assert np.all(scale > 0)


def test_pose_is_read_through_the_parameter_layout():
    """Only (..., 62) parameters: a vector of another length is an error, not 12 numbers read as a pose."""
    params = np.zeros((2, 62))
    params[:, [0, 5, 10]] = 1e-3  # s·R = 1e-3·I
    assert decompose_pose(params)[0] == pytest.approx([1e-3, 1e-3])
    for wrong in (np.zeros((2, 12)), np.zeros(50)):
        with pytest.raises(InputError, match="62"):
            decompose_pose(wrong)


def test_angle_round_trip_and_gimbal_lock():
    rng = np.random.default_rng(0)
    angles = rng.uniform([-89, -80, -80], [89, 80, 80], size=(200, 3))
    rotation = angles_to_rotation(angles[:, 0], angles[:, 1], angles[:, 2])
    np.testing.assert_allclose(rotation @ np.swapaxes(rotation, 1, 2), np.broadcast_to(np.eye(3), (200, 3, 3)),
                               atol=1e-12)
    np.testing.assert_allclose(rotation_to_angles(rotation), angles, atol=1e-9)
    # at yaw = +-90 pitch and roll are ambiguous: roll is set to 0 and the rotation is preserved
    for yaw in (90.0, -90.0):
        r = angles_to_rotation(yaw, 25.0, 10.0)
        y, p, ro = rotation_to_angles(r)
        assert y == pytest.approx(yaw) and ro == 0.0
        np.testing.assert_allclose(angles_to_rotation(y, p, ro), r, atol=1e-9)


def _synthetic_landmarks(noneck_model, yaw, pitch, roll):
    """68 image-frame landmarks of the mean face posed with the given AFLW angles."""
    pose = np.zeros((3, 4), np.float32)
    pose[:, :3] = angles_to_rotation(yaw, pitch, roll) * 5e-4
    pose[:, 3] = [60, 60, 0]
    params = join_params(pose, np.zeros(50))
    rotation = decompose_pose(params)[1]
    return frames.model_to_image(noneck_model.landmarks(params), np.array([0, 0, 120, 120.0])), rotation


def test_documented_signs_on_posed_mean_face(noneck_model):
    frontal, _ = _synthetic_landmarks(noneck_model, 0, 0, 0)
    eyes_x = (frontal[36, 0] + frontal[45, 0]) / 2
    # yaw > 0: the face turns towards the image left (nose tip moves left of the eye centre)
    turned, _ = _synthetic_landmarks(noneck_model, 30, 0, 0)
    assert turned[30, 0] - (turned[36, 0] + turned[45, 0]) / 2 < frontal[30, 0] - eyes_x - 3
    # pitch > 0: chin up, the nose tip rises towards the eyes (y down)
    up, _ = _synthetic_landmarks(noneck_model, 0, 20, 0)
    assert (up[30, 1] - up[39, 1]) < (frontal[30, 1] - frontal[39, 1]) - 3
    # roll > 0: clockwise in the image, so the image-right eye goes down
    rolled, rotation = _synthetic_landmarks(noneck_model, 0, 0, 20)
    eye_angle = np.degrees(np.arctan2(rolled[45, 1] - rolled[36, 1], rolled[45, 0] - rolled[36, 0]))
    assert eye_angle == pytest.approx(20, abs=1.5)
    assert rotation_to_angles(rotation) == pytest.approx([0, 0, 20], abs=1e-3)


@pytest.fixture(scope="module")
def aflw2000_pose(data_dir, golden_dir):
    """mb05 parameters on the 2000 AFLW2000-3D crops (the reference run's, which ddfa's equal:
    tests/eval/test_bench_aflw2000.py) and the official pose ground truth, in list order."""
    root = data_dir / "aflw2000-3d"
    names = (root / "AFLW2000-3D_crop.list").read_text().split()
    params = np.load(golden_dir / "aflw2000_mb05_params.npy")
    ann = np.load(root / "aflw2000_3d_annotations.npz")
    assert list(ann["names"]) == names and params.shape == (len(names), 62)
    truth = np.degrees(ann["pose_para"][:, [1, 0, 2]])  # (yaw, pitch, roll)
    keep = np.all(np.abs(truth) <= 99, axis=1)
    return params, truth, keep


def test_convention_matches_aflw2000_ground_truth(aflw2000_pose):
    params, truth, keep = aflw2000_pose
    assert keep.sum() == 1969
    predicted = pose_angles(params)
    mae = np.abs(predicted - truth)[keep].mean(axis=0)
    # published 3DDFA-family head-pose errors on AFLW2000-3D are 3-6 degrees per angle
    assert mae[0] < 3.5 and mae[1] < 6 and mae[2] < 4, mae
    median = np.median(np.abs(predicted - truth)[keep], axis=0)
    assert np.all(median < 4), median
    # the other composition order (R = Rz·Ry·Rx with negated angles) fits far worse
    rotation = decompose_pose(params)[1]
    a = np.swapaxes(rotation, 1, 2)
    other = np.degrees(np.stack([np.arcsin(np.clip(a[:, 0, 2], -1, 1)), np.arctan2(-a[:, 1, 2], a[:, 2, 2]),
                                 np.arctan2(-a[:, 0, 1], a[:, 0, 0])], axis=1))
    assert np.abs(other - truth)[keep].mean() > 1.8 * mae.mean()
    # 3DDFA_V2's own angles do not follow AFLW's convention: far worse on pitch and roll
    v2 = v2_angles(decompose_pose(params)[1])
    v2_mae = np.abs(v2 - truth)[keep].mean(axis=0)
    assert v2_mae[1] > 2 * mae[1] and v2_mae[2] > 2 * mae[2]
    # and the transposed rotation (the other plausible reading) is far worse too
    transposed = rotation_to_angles(np.swapaxes(decompose_pose(params)[1], 1, 2))
    assert np.abs(transposed - truth)[keep].mean() > 2 * mae.mean()
