"""AFLW2000-3D parity with the reference run of 3DDFA's benchmark code (golden/aflw2000_mb05*)."""

from __future__ import annotations

import numpy as np
import pytest

from ddfa.eval.aflw2000 import aflw2000_nme, load_aflw2000, summarize
from ddfa.morphable import load_morphable_model

KEYS = ("bin_0_30", "bin_30_60", "bin_60_90", "mean_of_bins")


def _check_against_golden(summary, golden_json, atol=1e-3):
    for combo, ref in golden_json["results"].items():
        row = summary[combo]
        for key in KEYS + ("std_of_bins",):
            assert row[key] == pytest.approx(ref[key], abs=atol), (combo, key)
        assert row["mean_all"] == pytest.approx(ref["mean_over_all_2000"], abs=atol)
        assert row["bin_counts"] == ref["bin_counts"]
        # equal to the printed precision of the reference table (4 decimals)
        assert [f"{row[k]:.4f}" for k in KEYS] == [f"{ref[k]:.4f}" for k in KEYS], combo


def test_protocol_math_on_reference_params(store, assets_dir, aflw2000_dir, golden_aflw2000):
    """Same parameters as the reference -> same per-face NME and bin means (frame v1)."""
    data = load_aflw2000(assets_dir, aflw2000_dir)
    model = load_morphable_model(store)
    per_face = aflw2000_nme(golden_aflw2000["params"], data, model, "v1")
    np.testing.assert_allclose(per_face["ori"], golden_aflw2000["nme_ori"], atol=1e-6)
    np.testing.assert_allclose(per_face["re"], golden_aflw2000["nme_re"], atol=1e-6)
    _check_against_golden(summarize(per_face, data), golden_aflw2000["json"], atol=1e-5)
    # the other frame: 3DDFA_V2's 0-based landmarks give the reference diagnostic (x-1, 120-y)
    other = summarize(aflw2000_nme(golden_aflw2000["params"], data, model, "ddfa"), data)
    diag = golden_aflw2000["json"]["diagnostics_not_reference"]["v2_similar_transform_convention_x-1_120-y"]
    for combo, values in diag.items():
        got = [other[combo][k] for k in KEYS]
        np.testing.assert_allclose(got, values, atol=1e-4)


def test_end_to_end_mb05_equals_reference(aflw2000_result, golden_aflw2000):
    """Crops read by ddfa, mb05 through the default backend, batch 128."""
    res = aflw2000_result
    np.testing.assert_allclose(res.curves["GT ori, split AFLW2000-3D.pose.npy"]["errors"] / 100,
                               golden_aflw2000["nme_ori"], atol=1e-5)
    np.testing.assert_allclose(res.curves["GT re, split AFLW2000-3D-new.pose.npy"]["errors"] / 100,
                               golden_aflw2000["nme_re"], atol=1e-5)
    _check_against_golden(res.results["nme"], golden_aflw2000["json"])
    assert res.results["other_frame"]["frame"] == "ddfa"
    assert res.results["other_frame"]["mean_of_bins"]["ori/pose"] == pytest.approx(3.792, abs=5e-4)
    assert res.model["name"] == "mb05"
    assert res.model["weights_sha256"] == "f93ed7f1c4c0382b16d7c18480a5f67473c1917a47475a9823924f38aeb27280"
    assert res.protocol["frame"] == "v1" and res.protocol["num_faces"] == 2000


def test_out_of_range_yaws_go_to_the_last_bin(aflw2000_result):
    over = aflw2000_result.extra["faces_with_abs_yaw_over_90"]
    assert len(over["pose"]) == 7
    bins = aflw2000_result.curves["GT ori, split AFLW2000-3D.pose.npy"]["bins"]
    names = aflw2000_result.extra["names"]
    assert all(bins[names.index(n)] == 2 for n in over["pose"])
    # crop #1474 is annotated -351 deg in pose.npy (near-frontal, 15.5 in new.pose): last bin as-is
    new_bins = aflw2000_result.curves["GT ori, split AFLW2000-3D-new.pose.npy"]["bins"]
    assert bins[1474] == 2 and new_bins[1474] == 0


def test_1998_list_is_the_2000_run_without_two_faces(mb05, assets_dir, aflw2000_dir, golden_aflw2000):
    from ddfa.eval import run_aflw2000

    data = load_aflw2000(assets_dir, aflw2000_dir, "1998")
    res = run_aflw2000(mb05, assets=assets_dir, data_dir=aflw2000_dir, face_list="1998",
                       params=golden_aflw2000["params"][data.rows])
    assert res.protocol["num_faces"] == 1998 and res.protocol["face_list"] == "1998"
    keep = np.ones(2000, bool)
    keep[[1081, 1798]] = False
    errors = res.curves["GT ori, split AFLW2000-3D.pose.npy"]["errors"]
    np.testing.assert_allclose(errors / 100, golden_aflw2000["nme_ori"][keep], atol=1e-6)
    # hand-computed summary of the reference per-face NME restricted to the 1998 faces
    yaw = np.abs(np.load(assets_dir / "3DDFA/test.configs/AFLW2000-3D.pose.npy")[keep])
    ref = 100 * golden_aflw2000["nme_ori"][keep].astype(np.float64)
    bins = [ref[yaw <= 30].mean(), ref[(yaw > 30) & (yaw <= 60)].mean(), ref[yaw > 60].mean()]
    row = res.results["nme"]["ori/pose"]
    np.testing.assert_allclose([row["bin_0_30"], row["bin_30_60"], row["bin_60_90"]], bins, atol=1e-4)
    assert row["mean_of_bins"] == pytest.approx(np.mean(bins), abs=1e-4)
    assert sum(row["bin_counts"]) == 1998
