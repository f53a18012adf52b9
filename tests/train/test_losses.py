"""Parity of PDC / VDC / WPDC with 3DDFA's reference values, and their gradients."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ddfa.morphable import load_whitening
from ddfa.train.losses import PDCLoss, VDCLoss, WPDCLoss, build_loss


@pytest.fixture(scope="module")
def golden(golden_dir):
    return dict(np.load(golden_dir / "losses.npz"))


@pytest.fixture(scope="module")
def v1_whitening(store):
    return load_whitening(store, "v1")


@pytest.fixture(scope="module")
def v2_whitening(store):
    return load_whitening(store, "v2")


def _inputs(golden, dtype=torch.float32):
    pred = torch.tensor(golden["pred"], dtype=dtype, requires_grad=True)
    target = torch.tensor(golden["target"], dtype=dtype)
    return pred, target


def test_whitening_is_v1(golden, v1_whitening):
    np.testing.assert_array_equal(v1_whitening.mean, golden["v1_param_mean"])
    np.testing.assert_array_equal(v1_whitening.std, golden["v1_param_std"])


@pytest.mark.parametrize(
    "name, make",
    [
        ("pdc", lambda m, w: PDCLoss()),
        ("wpdc", lambda m, w: WPDCLoss(m, w, resample_num=0)),
        ("vdc", lambda m, w: VDCLoss(m, w)),
        ("vdc68", lambda m, w: VDCLoss(m, w, resample_num=0)),
    ],
)
def test_loss_and_gradient_match_reference(name, make, golden, full_model, v1_whitening):
    loss_fn = make(full_model, v1_whitening)
    pred, target = _inputs(golden)
    loss = loss_fn(pred, target)
    loss.backward()
    np.testing.assert_allclose(loss.item(), golden[f"{name}_loss"], rtol=1e-5)
    grad = golden[f"{name}_grad"]
    np.testing.assert_allclose(pred.grad.numpy(), grad, rtol=1e-5, atol=1e-5 * np.abs(grad).max())
    # float64 run against the float64 reference
    pred64, target64 = _inputs(golden, torch.float64)
    loss64 = loss_fn.double()(pred64, target64)
    np.testing.assert_allclose(loss64.item(), golden[f"{name}_loss_f64"], rtol=1e-7)


def test_wpdc_weights_match_reference(golden, full_model, v1_whitening):
    loss_fn = WPDCLoss(full_model, v1_whitening, resample_num=0)
    pred, target = _inputs(golden)
    weights = loss_fn.weights(pred, target)
    assert weights.shape == (16, 62)
    np.testing.assert_allclose(weights.numpy(), golden["wpdc_weights"], atol=1e-6)
    assert torch.all(weights[:, 11] == 0)
    np.testing.assert_allclose(weights.max(dim=1).values.numpy(), 1.0)
    w64 = WPDCLoss(full_model, v1_whitening, resample_num=0).double().weights(*_inputs(golden, torch.float64))
    np.testing.assert_allclose(w64.numpy(), golden["wpdc_weights_f64"], atol=1e-7)


def test_wpdc_gradient_is_weighted_pdc(golden, full_model, v1_whitening):
    """Weights are constants: d loss / d pred = 2 w (pred - target) / (B * 62)."""
    loss_fn = WPDCLoss(full_model, v1_whitening, resample_num=0)
    pred, target = _inputs(golden)
    loss_fn(pred, target).backward()
    weights = loss_fn.weights(pred, target)
    expected = 2 * weights * (pred.detach() - target) / pred.numel()
    np.testing.assert_allclose(pred.grad.numpy(), expected.numpy(), rtol=1e-6, atol=1e-12)


@pytest.mark.parametrize("name", ["pdc", "vdc", "wpdc"])
@pytest.mark.parametrize("variant", ["full-v1", "noneck-v2"])
def test_losses_decrease_towards_target(name, variant, golden, full_model, noneck_model, v1_whitening,
                                        v2_whitening):
    """Moving the prediction along -grad or straight towards the target lowers the loss."""
    model, white = (full_model, v1_whitening) if variant == "full-v1" else (noneck_model, v2_whitening)
    loss_fn = build_loss(name, model, white, resample_num=132, vdc_vertices="resample").double()
    pred, target = _inputs(golden, torch.float64)
    gen = torch.Generator().manual_seed(3)
    loss = loss_fn(pred, target, generator=torch.Generator().manual_seed(3))
    loss.backward()
    assert loss.item() > 0
    with torch.no_grad():
        for t in (0.25, 0.5, 0.75, 1.0):
            moved = pred + t * (target - pred)
            value = loss_fn(moved, target, generator=torch.Generator().manual_seed(3)).item()
            assert value < loss.item()
        assert loss_fn(target, target, generator=gen).item() == pytest.approx(0.0, abs=1e-12)
        step = pred - 1e-3 * pred.grad / pred.grad.norm()
        assert loss_fn(step, target, generator=torch.Generator().manual_seed(3)).item() < loss.item()


def test_resampling_is_seeded_and_device_agnostic(golden, noneck_model, v2_whitening):
    loss_fn = WPDCLoss(noneck_model, v2_whitening, resample_num=132)
    pred, target = _inputs(golden)
    a = loss_fn(pred, target, generator=torch.Generator().manual_seed(1))
    b = loss_fn(pred, target, generator=torch.Generator().manual_seed(1))
    c = loss_fn(pred, target, generator=torch.Generator().manual_seed(2))
    assert a.item() == b.item() and a.item() != c.item()
    assert all(buf.device == pred.device for buf in loss_fn.buffers())
    vdc = VDCLoss(noneck_model, v2_whitening, resample_num=132)
    assert vdc.vertex_ids(132, torch.Generator().manual_seed(0)).shape == (200,)


def test_bad_shapes_are_rejected(full_model, v1_whitening):
    from ddfa.errors import InputError

    with pytest.raises(InputError, match=r"\(B, 62\)"):
        VDCLoss(full_model, v1_whitening)(torch.zeros(2, 61), torch.zeros(2, 61))
    with pytest.raises(InputError, match="unknown loss"):
        build_loss("l1", full_model, v1_whitening)
