"""Fixtures of the training tests: tiny synthetic data sets rendered once per session."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def synth_train(built_once, assets_dir):
    """48 synthetic crops (seed 11) in ddfa's format, with 3DDFA's list + pickle beside them."""
    from ddfa.train.synth import synthesize

    return built_once("synth_train", lambda out: synthesize(out, 48, seed=11, assets=assets_dir, fmt="both"))


@pytest.fixture(scope="session")
def synth_val(built_once, assets_dir):
    """16 held-out synthetic crops (seed 12)."""
    from ddfa.train.synth import synthesize

    return built_once("synth_val", lambda out: synthesize(out, 16, seed=12, assets=assets_dir))


@pytest.fixture()
def tiny_config(synth_train, synth_val, assets_dir, tmp_path):
    """A training config that runs in seconds: width 0.25, batch 8, single-threaded loading."""
    from ddfa.train.config import TrainConfig

    def make(**overrides):
        values = dict(train=str(synth_train), val=str(synth_val), out=str(tmp_path / "run"), width=0.25,
                      batch_size=8, lr=0.01, epochs=2, warmup=1, milestones=[1], num_workers=0,
                      assets=str(assets_dir), progress=False, log_every=1, threads=1, device="cpu",
                      checkpoints="last")
        values.update(overrides)
        return TrainConfig.from_dict(values)

    return make


@pytest.fixture(autouse=True)
def _restore_torch_threads():
    """The trainer's ``threads`` setting is process-wide: restore it after each test."""
    import torch

    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)
