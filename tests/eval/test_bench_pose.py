"""Head-pose protocol: ground-truth reading, the ±99° selection, the MAE, and the run-time
convention check (on synthetic rotations and on AFLW2000-3D)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from ddfa.eval import pose as pose_eval
from ddfa.eval.pose import (
    CONVENTIONS,
    ConventionError,
    check_convention,
    ddfa_convention,
    evaluate_pose,
    geodesic_deg,
    identify_convention,
    load_pose_ground_truth,
)
from ddfa.morphable.pose import angles_to_rotation, decompose_pose, pose_angles

BEST_ON_AFLW2000 = "R^T = Rz(roll) Ry(yaw) Rx(pitch)"


@pytest.fixture(scope="module")
def truth(aflw2000_dir):
    names = (aflw2000_dir / "AFLW2000-3D_crop.list").read_text().split()
    return load_pose_ground_truth(aflw2000_dir, names)


def test_ground_truth_columns_by_hand(truth, assets_dir):
    # pose_para[0, :3] = (-0.399230778, 0.0182265788, 0.0856762156) rad = pitch, yaw, roll
    np.testing.assert_allclose(truth[0], np.degrees([0.0182265788, -0.399230778, 0.0856762156]), atol=1e-6)
    # the yaw column is 3DDFA's AFLW2000-3D.pose.npy split (to float32 precision)
    split = np.load(assets_dir / "3DDFA/test.configs/AFLW2000-3D.pose.npy")
    np.testing.assert_allclose(truth[:, 0], split, atol=1e-4)
    keep = np.all(np.abs(truth) <= 99, axis=1)
    assert keep.sum() == 1969


def test_geodesic_by_hand():
    eye = np.broadcast_to(np.eye(3), (2, 3, 3))
    rz30 = Rotation.from_euler("z", 30, degrees=True).as_matrix()
    rx90 = Rotation.from_euler("x", -90, degrees=True).as_matrix()
    np.testing.assert_allclose(geodesic_deg(eye, np.stack([rz30, rx90])), [30.0, 90.0], atol=1e-9)


def test_candidates_are_recognised_on_synthetic_rotations():
    rng = np.random.default_rng(1)
    angles = rng.uniform(-70, 70, size=(300, 3))
    names = list(CONVENTIONS)
    assert len(names) == 13 and len({identify_convention(CONVENTIONS[n]) for n in names}) == 13
    for name in (names[0], names[3], names[-1]):
        check = check_convention(CONVENTIONS[name](angles), angles, strict=False)
        assert check["best"] == name and check["mean_geodesic_deg"][name] < 1e-6
    # ddfa's convention is angles_to_rotation, whatever it is, and it is recognised among the candidates
    np.testing.assert_allclose(ddfa_convention(angles), angles_to_rotation(angles[:, 0], angles[:, 1], angles[:, 2]))
    assert identify_convention(ddfa_convention) in CONVENTIONS
    # rotations made with ddfa's own convention pass the check
    assert check_convention(ddfa_convention(angles), angles)["passed"]


def test_check_fails_loudly_on_a_mismatch(monkeypatch):
    rng = np.random.default_rng(2)
    angles = rng.uniform(-60, 60, size=(200, 3))
    rotations = CONVENTIONS["3DDFA_V2 matrix2angle: R = Rz(roll) Ry(-yaw) Rx(pitch)"](angles)
    with pytest.raises(ConventionError, match="3DDFA_V2"):
        check_convention(rotations, angles)
    recorded = check_convention(rotations, angles, strict=False)
    assert not recorded["passed"]


def test_which_convention_the_aflw2000_ground_truth_follows(golden_aflw2000, truth):
    """Measured, not assumed: mb05's rotations against the GT read in each convention."""
    params = golden_aflw2000["params"]
    keep = np.all(np.abs(truth) <= 99, axis=1)
    _, rotations, _ = decompose_pose(params[keep].astype(np.float64))
    check = check_convention(rotations, truth[keep], strict=False)
    geo = check["mean_geodesic_deg"]
    assert check["best"] == BEST_ON_AFLW2000
    assert geo[BEST_ON_AFLW2000] == pytest.approx(5.65, abs=0.01)
    # every other reading is at least 5 degrees worse on average
    assert sorted(geo.values())[1] > geo[BEST_ON_AFLW2000] + 5


def test_mae_and_selection_by_hand(golden_aflw2000, truth):
    params = golden_aflw2000["params"]
    results, keep, abs_err = evaluate_pose(params, truth, strict=False)
    assert keep.sum() == 1969 and results["num_faces"] == 1969
    hand = np.abs(pose_angles(params) - truth)[keep]
    np.testing.assert_allclose(abs_err, hand)
    for i, name in enumerate(("yaw", "pitch", "roll")):
        assert results["mae"][name] == pytest.approx(hand[:, i].mean())
    assert results["mae"]["mean"] == pytest.approx(hand.mean())
    counts = [results["mae_by_yaw_bin"][k]["count"] for k in ("bin_0_30", "bin_30_60", "bin_60_90")]
    assert sum(counts) == 1969
    # a face outside ±99 deg in any angle is dropped
    shifted = truth.copy()
    shifted[0, 2] = 99.5
    assert evaluate_pose(params, shifted, strict=False)[1].sum() == 1969 - int(keep[0])


def test_run_pose_checks_ddfa_convention(mb05, assets_dir, aflw2000_dir, golden_aflw2000, monkeypatch):
    """The benchmark passes only when ddfa's own convention is the one the GT fits best."""
    from ddfa.eval import run_pose

    params = golden_aflw2000["params"]
    if identify_convention(ddfa_convention) == BEST_ON_AFLW2000:
        res = run_pose(mb05, assets=assets_dir, data_dir=aflw2000_dir, params=params)
        assert res.results["convention_check"]["passed"]
        assert res.results["mae"]["mean"] < 5
    else:
        with pytest.raises(ConventionError):
            run_pose(mb05, assets=assets_dir, data_dir=aflw2000_dir, params=params)
    # a wrong convention inside ddfa would be caught
    monkeypatch.setattr(pose_eval, "ddfa_convention", CONVENTIONS["R = Rx(pitch) Ry(yaw) Rz(roll)"])
    with pytest.raises(ConventionError):
        run_pose(mb05, assets=assets_dir, data_dir=aflw2000_dir, params=params)
    res = run_pose(mb05, assets=assets_dir, data_dir=aflw2000_dir, params=params, strict=False)
    assert not res.results["convention_check"]["passed"]
    assert "recorded" in res.protocol["convention_check"]


def test_ddfa_pose_convention_matches_aflw2000_ground_truth():
    """ddfa.morphable.pose must follow the convention the AFLW2000-3D ground truth fits best.

    Fails while ddfa.morphable.pose uses Rᵀ = Rx(pitch)·Ry(yaw)·Rz(roll) (see the report of
    issue 5): the GT fits Rᵀ = Rz(roll)·Ry(yaw)·Rx(pitch) with a 5.7° mean rotation error,
    against 15.1° for the former.
    """
    assert identify_convention(ddfa_convention) == BEST_ON_AFLW2000
