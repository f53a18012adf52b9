"""The speed benchmark runs every stage and reports ms and ratios (no timing assertions:
speed figures come from benchmarks/bench_speed.py, never from tests)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from ddfa.errors import InputError
from ddfa.eval.speed import FRAME_SIZE, Config, format_speed, load_frame, run_speed


def test_frame_is_720p_with_two_faces(store, aligner):
    frame = load_frame(store)
    assert frame.shape == (FRAME_SIZE[1], FRAME_SIZE[0], 3) and frame.dtype == np.uint8
    assert len(aligner(frame)) == 2


def test_speed_run_reports_every_stage(assets_dir):
    result = run_speed(assets_dir, repeats=1, configs=[Config(label="CPU 1 thread", device="cpu", threads=1)])
    rows = result["rows"]
    stages = {r["stage"] for r in rows}
    assert stages == {"detection", "regression_b1", "regression_b128", "dense", "render"}
    engines = {(r["stage"], r["engine"]) for r in rows}
    assert ("detection", "torch eager") in engines and ("dense", "numpy") in engines
    for r in rows:
        assert r["ms"] > 0
        if r["engine"] == "torch eager":
            assert r["ratio_vs_torch"] == 1.0
    table = format_speed(result)
    assert "torch eager" in table and "regression, batch 128" in table and "CPU 1 thread" in table
    json.dumps(result)  # the CLI writes it as JSON


def test_unknown_stage_is_an_input_error(assets_dir):
    with pytest.raises(InputError, match="unknown speed stage"):
        run_speed(assets_dir, repeats=1, stages=("warp",))
