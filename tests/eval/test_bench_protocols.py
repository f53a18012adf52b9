"""Protocol details with hand-computed values: yaw bins, NME normalisation, landmark frames,
list order and the bin summary."""

from __future__ import annotations

import numpy as np
import pytest

from ddfa.errors import InputError
from ddfa.eval.protocols import box_size, landmarks_in_image, nme, resolve_data_dir, summarize_bins, yaw_bins


def test_yaw_bins_edges_and_out_of_range_yaws():
    yaw = [0.0, -30.0, 30.0, 30.0001, -60.0, 60.0, 60.0001, 89.0, -95.5, 187.8, -351.2]
    # [0,30] -> 0, (30,60] -> 1, > 60 -> 2; |yaw| > 90 (even -351) stays in the last bin, as 3DDFA's ana()
    assert yaw_bins(yaw).tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2, 2, 2]


def test_nme_normalises_by_sqrt_of_gt_box_area():
    gt = np.array([[[0.0, 0.0], [40.0, 0.0], [40.0, 10.0], [0.0, 10.0]]])  # box 40 x 10 -> sqrt(400) = 20
    pred = gt + np.array([[3.0, 4.0], [0.0, 0.0], [0.0, 2.0], [6.0, 8.0]])  # distances 5, 0, 2, 10
    assert box_size(gt)[0] == pytest.approx(20.0)
    assert nme(pred, gt)[0] == pytest.approx((5 + 0 + 2 + 10) / 4 / 20)
    # invisible points count neither in the mean nor in the box
    visible = np.array([[True, True, True, False]])  # box of (0,0),(40,0),(40,10): still 40 x 10
    assert nme(pred, gt, visible)[0] == pytest.approx((5 + 0 + 2) / 3 / 20)
    visible2 = np.array([[True, False, True, True]])  # box of (0,0),(40,10),(0,10): 40 x 10
    assert box_size(gt, visible2)[0] == pytest.approx(20.0)
    gt_far = gt.copy()
    gt_far[0, 1] = [1000.0, -1.0]  # an invisible outlier must not widen the box
    assert box_size(gt_far, visible2)[0] == pytest.approx(20.0)
    # the prediction's own box plays no part: scaling the prediction changes only the distances
    assert nme(gt * 3, gt)[0] == pytest.approx(np.linalg.norm(2 * gt[0], axis=1).mean() / 20)
    with pytest.raises(InputError):
        nme(pred[:, :3], gt)


def test_summary_mean_of_bin_means_and_counts():
    errors = np.array([0.01, 0.03, 0.02, 0.04, 0.10])
    yaw = np.array([5.0, -20.0, 45.0, 59.0, 99.0])
    s = summarize_bins(errors, yaw)
    assert s["bin_counts"] == [2, 2, 1]
    assert s["bin_0_30"] == pytest.approx(2.0) and s["bin_30_60"] == pytest.approx(3.0)
    assert s["bin_60_90"] == pytest.approx(10.0)
    assert s["mean_of_bins"] == pytest.approx(5.0)  # (2 + 3 + 10) / 3, not the face mean
    assert s["mean_all"] == pytest.approx(4.0)
    assert s["std_of_bins"] == pytest.approx(np.std([2.0, 3.0, 10.0]))
    empty = summarize_bins(np.array([0.01]), np.array([10.0]))
    assert empty["bin_counts"] == [1, 0, 0] and np.isnan(empty["bin_30_60"])


class _PointModel:
    """A stand-in morphable model whose 68 landmarks are given model-frame points."""

    def __init__(self, points):
        self.points = np.asarray(points, dtype=np.float32)

    def landmarks(self, params):
        return np.repeat(self.points[None], len(params), axis=0)


def test_landmark_frames_and_crop_to_image_by_hand():
    # model point (Vx, Vy, Vz) = (61, 60, 8); roi (sx, sy, ex, ey) = (10, 20, 250, 140): scales 2 and 1
    model = _PointModel(np.tile([61.0, 60.0, 8.0], (68, 1)))
    roi = np.array([[10.0, 20.0, 250.0, 140.0]])
    params = np.zeros((1, 62), np.float32)
    v1 = landmarks_in_image(model, params, roi, "v1")[0, 0]
    ddfa_frame = landmarks_in_image(model, params, roi, "ddfa")[0, 0]
    # v1: crop (x, 121 - y) = (61, 61) -> image (61 * 2 + 10, 61 * 1 + 20) = (132, 81)
    np.testing.assert_allclose(v1[:2], [132.0, 81.0])
    # ddfa / V2: crop (x - 1, 120 - y) = (60, 60) -> (130, 80): one crop pixel (2 px, 1 px) up-left
    np.testing.assert_allclose(ddfa_frame[:2], [130.0, 80.0])
    assert v1[2] == pytest.approx(8.0 * 1.5)  # z scaled by the mean roi scale
    with pytest.raises(InputError):
        landmarks_in_image(model, params, roi, "v2")


def test_aflw2000_list_order_and_1998_list(assets_dir, aflw2000_dir):
    from ddfa.eval.aflw2000 import load_aflw2000

    full = load_aflw2000(assets_dir, aflw2000_dir, "2000")
    lines = (aflw2000_dir / "AFLW2000-3D_crop.list").read_text().split()
    assert full.names == lines and full.rows.tolist() == list(range(2000))
    assert full.names[0] == "image00002.jpg"
    # row 0 of the ground truth belongs to line 0: its first landmark and roi box, read by hand
    gt = np.load(assets_dir / "3DDFA/test.configs/AFLW2000-3D.pts68.npy")
    np.testing.assert_array_equal(full.landmarks["ori"][0, 0], gt[0, :2, 0])
    np.testing.assert_array_equal(full.roi_boxes[0], [76.0, 113.0, 392.0, 429.0])

    short = load_aflw2000(assets_dir, aflw2000_dir, "1998")
    assert len(short.names) == 1998
    assert "image02139.jpg" not in short.names and "image03862.jpg" not in short.names
    # the two dropped faces are lines 1081 and 1798: later rows shift by one, then two
    assert lines[1081] == "image02139.jpg" and lines[1798] == "image03862.jpg"
    expected = [r for r in range(2000) if r not in (1081, 1798)]
    assert short.rows.tolist() == expected
    np.testing.assert_array_equal(short.landmarks["re"][1081], full.landmarks["re"][1082])
    np.testing.assert_array_equal(short.yaw["new_pose"][1797], full.yaw["new_pose"][1799])
    with pytest.raises(InputError):
        load_aflw2000(assets_dir, aflw2000_dir, "1999")


def test_data_folder_resolution(tmp_path, monkeypatch, store):
    with pytest.raises(InputError, match="not found"):
        resolve_data_dir(tmp_path / "nope", "aflw2000-3d")
    (tmp_path / "aflw2000-3d").mkdir()
    monkeypatch.setenv("DDFA_DATA", str(tmp_path))
    assert resolve_data_dir(None, "aflw2000-3d", store) == tmp_path / "aflw2000-3d"
    monkeypatch.delenv("DDFA_DATA")
    # beside the asset folder: <assets>/../data/<name>
    assert resolve_data_dir(None, "aflw2000-3d", store) == store.root.resolve().parent / "data" / "aflw2000-3d"
    with pytest.raises(InputError, match="--data"):
        resolve_data_dir(None, "no-such-benchmark", store)
