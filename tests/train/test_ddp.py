"""DistributedDataParallel under torchrun: 2 CPU processes (gloo) == 1 process at the same global batch."""

from __future__ import annotations

import csv
import os
import subprocess
import sys

import numpy as np
import torch

from ddfa.assets import load_torch_checkpoint
from ddfa.train.trainer import train


def _losses(path):
    with open(path, newline="") as handle:
        return [float(row["loss"]) for row in csv.DictReader(handle) if row["kind"] == "step"]


def test_two_processes_follow_the_single_process_trajectory(tiny_config, tmp_path, assets_dir):
    """Same data per step (DistributedSampler), same WPDC vertex subsets (seeded per step) and
    global batch-norm statistics (synchronised BN): the trajectories agree to rounding.

    float64, because MobileNet's early-layer gradients cancel heavily (BN -> ReLU -> depthwise
    conv -> BN is nearly scale invariant): merely reordering a batch changes them by ~1e-10
    relative in float64 and ~1e-2 in float32, and SGD amplifies that from step to step; the
    DDP run differs from the single process by no more than that.
    """
    common = dict(batch_size=16, lr=0.01, warmup=0, epochs=1, max_steps=3, dtype="float64", export_v2=False)
    single = train(tiny_config(out=str(tmp_path / "single"), **common))
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
        "-m", "ddfa.cli.main", "train",
        "--train", str(tiny_config().train), "--out", str(tmp_path / "ddp"), "--assets", str(assets_dir),
        "--width", "0.25", "--batch-size", "16", "--lr", "0.01", "--warmup", "0", "--epochs", "1",
        "--max-steps", "3", "--num-workers", "0", "--threads", "1", "--device", "cpu", "--no-progress",
        "--set", "dtype=float64", "--set", "log_every=1", "--set", "checkpoints=last", "--set", "export_v2=false",
    ]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ddp = _losses(tmp_path / "ddp" / "log.csv")
    ref = single.train_losses
    assert len(ddp) == len(ref) == 3
    np.testing.assert_allclose(ddp[0], ref[0], rtol=1e-11)  # same data, same forward pass
    np.testing.assert_allclose(ddp, ref, rtol=1e-5)
    a = load_torch_checkpoint(single.final)["state_dict"]
    b = load_torch_checkpoint(tmp_path / "ddp" / "final.pth")["state_dict"]
    assert set(a) == set(b)  # synchronised BN is saved as plain BatchNorm2d
    for key in ("fc.weight", "fc.bias", "dw6.conv_sep.weight", "bn1.running_mean"):
        torch.testing.assert_close(b[key], a[key], rtol=1e-4, atol=1e-6)
