"""``ddfa synth``: random faces rendered with exactly the parameters stored beside them."""

from __future__ import annotations

import numpy as np
import pytest

from ddfa.morphable import load_whitening, model_to_crop, pose_angles
from ddfa.morphable.params import coefficients
from ddfa.render import rasterize
from ddfa.train.data import read_ddfa_dataset
from ddfa.train.synth import CROP_CENTRE, sample_params, synth_sample


@pytest.fixture(scope="module")
def v2(store):
    return load_whitening(store, "v2")


def test_samples_are_deterministic(noneck_model, v2):
    a_img, a_par, _ = synth_sample(5, 9, noneck_model, v2)
    b_img, b_par, _ = synth_sample(5, 9, noneck_model, v2)
    c_img, c_par, _ = synth_sample(6, 9, noneck_model, v2)
    np.testing.assert_array_equal(a_img, b_img)
    np.testing.assert_array_equal(a_par, b_par)
    assert not np.array_equal(a_par, c_par)
    assert a_img.shape == (120, 120, 3) and a_img.dtype == np.uint8 and a_par.dtype == np.float32


def test_parameter_ranges(noneck_model, v2):
    params = np.stack([sample_params(np.random.default_rng([1, i]), v2, noneck_model) for i in range(300)])
    angles = pose_angles(params)
    assert angles[:, 0].min() < -80 and angles[:, 0].max() > 80 and np.abs(angles[:, 0]).max() <= 90.01
    assert np.abs(angles[:, 1:]).max() <= 40.5
    lm = model_to_crop(noneck_model.landmarks(params))
    centre = (lm[:, :, :2].min(1) + lm[:, :, :2].max(1)) / 2
    assert np.abs(centre - np.asarray(CROP_CENTRE)).max() <= 2.0 + 1e-3
    z = (coefficients(params) - coefficients(v2.mean)) / coefficients(v2.std)
    assert np.abs(z).max() <= 3.0 + 1e-4 and 0.7 < z.std() < 1.1


def test_rendered_face_is_where_the_parameters_put_it(noneck_model, v2):
    """Re-rasterising the stored parameters covers the same pixels as the rendered face."""
    for index in range(6):
        image, params, coverage = synth_sample(index, 4, noneck_model, v2)
        verts = model_to_crop(noneck_model.vertices(params)).astype(np.float32)
        mask = rasterize(verts, noneck_model.triangles, 120, 120).mask
        rendered = coverage > 0.5
        iou = (mask & rendered).sum() / (mask | rendered).sum()
        assert iou > 0.95, (index, iou)
        nose = np.rint(model_to_crop(noneck_model.landmarks(params))[30, :2]).astype(int)
        if abs(pose_angles(params)[0]) < 60 and (0 <= nose).all() and (nose < 120).all():
            assert coverage[nose[1], nose[0]] > 0.99
        # the face differs from the background around it
        assert image[rendered].std() > 3


def test_cli_writes_both_formats(tmp_path, assets_dir, capsys):
    from ddfa.cli.main import main

    out = tmp_path / "s"
    code = main(["synth", "--out", str(out), "--num", "5", "--seed", "3", "--format", "both", "--quiet",
                 "--assets", str(assets_dir)])
    assert code == 0 and "wrote 5 crops" in capsys.readouterr().out
    src = read_ddfa_dataset(out)
    assert len(src) == 5 and (out / "train.list").read_text().count("\n") == 5
    np.testing.assert_allclose(src.pose, pose_angles(src.params), atol=1e-3)
    assert main(["synth", "--out", str(out), "--num", "0", "--assets", str(assets_dir)]) == 1
    assert "must be positive" in capsys.readouterr().err
