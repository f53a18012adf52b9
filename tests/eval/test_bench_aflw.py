"""AFLW 21-point protocol: the 68 -> 21 map derived from ground truth, visibility, the
normalising box, and a run on part of the real subset."""

from __future__ import annotations

import numpy as np
import pytest

from ddfa.eval.aflw import AFLW21_FROM_68, AFLW21_NAMES, aflw21_matrix, landmark_distance_table, load_aflw, to_aflw21


@pytest.fixture(scope="module")
def aflw2000_both_annotations(assets_dir):
    gt = assets_dir / "3DDFA/test.configs"
    return (np.load(gt / "AFLW2000-3D.pts21.npy"), np.load(gt / "AFLW2000-3D.pts68.npy"),
            np.load(gt / "AFLW2000-3D-Reannotated.pts68.npy"))


def test_map_is_derived_from_ground_truth(aflw2000_both_annotations):
    """Each single-landmark AFLW point is the nearest 68-point landmark (original annotation);
    each centroid beats every single landmark on both annotations."""
    pts21, ori, re = aflw2000_both_annotations
    assert len(AFLW21_FROM_68) == len(AFLW21_NAMES) == 21
    table_ori = landmark_distance_table(pts21, ori)
    table_re = landmark_distance_table(pts21, re)
    assert table_ori.shape == (21, 68)
    w = aflw21_matrix()
    for k, ids in enumerate(AFLW21_FROM_68):
        if len(ids) == 1:
            assert int(np.argmin(table_ori[k])) == ids[0], AFLW21_NAMES[k]
        else:
            for pts68, table in ((ori, table_ori), (re, table_re)):
                centroid = np.concatenate([pts68[:, :2], (pts68[:, :2] @ w[k])[:, :, None]], axis=2)
                own = landmark_distance_table(pts21, centroid)[k, 68]
                assert own < table[k].min() - 0.005, AFLW21_NAMES[k]
    # the map is left/right symmetric in the iBUG numbering (pairs of mirrored landmarks)
    mirror = {17: 26, 19: 24, 21: 22, 36: 45, 39: 42, 2: 14, 31: 35, 60: 64}
    mirror.update({v: k for k, v in list(mirror.items())})
    pairs = [(0, 5), (1, 4), (2, 3), (6, 11), (8, 9), (12, 16), (13, 15), (17, 19)]
    for a, b in pairs:
        assert mirror[AFLW21_FROM_68[a][0]] == AFLW21_FROM_68[b][0]
    # overall, the mapped 68-point ground truth lies within 3 % of the AFLW points
    mapped = np.einsum("kp,ndp->ndk", w, ori[:, :2].astype(np.float64))
    visible = pts21[:, 0] >= 0
    norm = np.sqrt(np.prod(ori[:, :2].max(2) - ori[:, :2].min(2), axis=1))
    dist = np.linalg.norm(mapped - pts21, axis=1) / norm[:, None]
    assert dist[visible].mean() < 0.03


def test_to_aflw21_by_hand():
    pts68 = np.zeros((1, 68, 2))
    pts68[0, :, 0] = np.arange(68)  # x = landmark id
    out = to_aflw21(pts68)
    assert out.shape == (1, 21, 2)
    assert out[0, 0, 0] == 17 and out[0, 20, 0] == 8
    assert out[0, 7, 0] == pytest.approx(np.mean(range(36, 42)))  # eye centre = eye-contour centroid
    assert out[0, 18, 0] == pytest.approx(64.0)  # mouth centre = midpoint of 62 and 66


def test_subset_rows_and_visibility(assets_dir, data_dir):
    data = load_aflw(assets_dir, data_dir / "aflw-subset")
    assert len(data.names) == 4500
    rows = np.load(data_dir / "aflw-subset/subset_indices.npy")
    np.testing.assert_array_equal(data.rows, rows)
    bins = np.where(np.abs(data.yaw) <= 30, 0, np.where(np.abs(data.yaw) <= 60, 1, 2))
    assert np.bincount(bins).tolist() == [1500] * 3
    raw = np.load(assets_dir / "3DDFA/test.configs/AFLW_GT_pts21.npy")[rows]
    np.testing.assert_array_equal(data.visible, raw[:, 0, :] != -1)
    assert data.visible.sum(axis=1).min() >= 5
    assert data.roi_boxes.dtype == np.float32 and data.roi_boxes.shape == (4500, 4)


def test_run_on_part_of_the_subset(mb05, store, assets_dir, data_dir, tmp_path):
    """300 real faces of the subset: the figures equal a hand-written evaluation."""
    from ddfa.eval import run_aflw
    from ddfa.eval.protocols import landmarks_in_image
    from ddfa.io.image import read_image
    from ddfa.morphable import load_morphable_model

    src = data_dir / "aflw-subset"
    lines = (src / "subset.list").read_text().splitlines()[::15]
    part = tmp_path / "aflw-part"
    part.mkdir()
    (part / "subset.list").write_text("\n".join(lines) + "\n")
    (part / "AFLW_GT_crop").symlink_to(src / "AFLW_GT_crop")
    res = run_aflw(mb05, assets=assets_dir, data_dir=part)
    assert res.protocol["num_faces"] == 300
    assert "21-point box" in res.protocol["normalisation_short"]

    rows = np.array([int(line.split("\t")[0]) for line in lines])
    names = [line.split("\t")[1] for line in lines]
    gt_dir = assets_dir / "3DDFA/test.configs"
    pts = np.load(gt_dir / "AFLW_GT_pts21.npy")[rows].astype(np.float64)  # (N, 2, 21)
    roi = np.load(gt_dir / "AFLW_GT_crop_roi_box.npy")[rows].astype(np.float64)
    yaw = np.abs(np.load(gt_dir / "AFLW_GT_crop_yaws.npy")[rows])
    params = mb05(np.stack([read_image(src / "AFLW_GT_crop" / n) for n in names]), batch_size=128)
    lm = landmarks_in_image(load_morphable_model(store), params, roi)
    expected = []
    for i in range(len(rows)):
        vis = pts[i, 0] != -1
        pred = np.array([lm[i, list(ids), :2].mean(axis=0) for ids in AFLW21_FROM_68])[vis]
        gt = pts[i].T[vis]
        w, h = gt.max(axis=0) - gt.min(axis=0)
        expected.append(np.linalg.norm(pred - gt, axis=1).mean() / np.sqrt(w * h))
    expected = 100 * np.array(expected)
    np.testing.assert_allclose(res.curves["AFLW 21 points (subset)"]["errors"], expected, atol=1e-4)
    row = res.results["nme"]["pts21/yaws"]
    means = [expected[yaw <= 30].mean(), expected[(yaw > 30) & (yaw <= 60)].mean(), expected[yaw > 60].mean()]
    np.testing.assert_allclose([row["bin_0_30"], row["bin_30_60"], row["bin_60_90"]], means, atol=1e-4)
    assert 2.0 < row["mean_of_bins"] < 10.0  # a working model, not a broken frame (that gives > 40)
