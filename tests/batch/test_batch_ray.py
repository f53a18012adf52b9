"""``ddfa batch --engine ray`` on a local Ray with 2 CPUs: rows equal ``ddfa align``'s (both
plans: one CPU actor pool, and detection and regression actors), and a driver stopped with
SIGINT half way resumes with every image exactly once."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import ray

import ddfa
from ddfa.batch import list_inputs
from ddfa.cli.main import main

# Ray Data's own deprecated settings, warned about from inside Ray
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:ray.*")


@pytest.fixture(scope="module")
def ray_address():
    """A local Ray with 2 CPUs, owned by this test module."""
    started = not ray.is_initialized()
    if started:
        ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR")
    yield ray.get_runtime_context().gcs_address
    if started:
        ray.shutdown()


def test_ray_engine_matches_align(tmp_path, ray_address, mixed_folder, assets_dir, check_tables, capsys):
    out = tmp_path / "out"
    assert main(["batch", str(mixed_folder.root), "--output", str(out), "--engine", "ray", "--address", ray_address,
                 "--assets", str(assets_dir), "--batch-size", "2", "--shard-size", "4", "--quiet"]) == 1
    success = check_tables(out)
    assert success["options"]["engine"] == "ray" and success["run"]["processed"] == len(mixed_folder.inputs)
    assert f"{len(mixed_folder.broken)} failure(s)" in capsys.readouterr().out


def test_ray_sigint_then_resume_split_plan(tmp_path, ray_address, many_photos, assets_dir, default_aligner, capsys):
    """SIGINT to a driver connected to the cluster: it commits what it received and exits 130; the
    re-run (detection and regression in separate actor pools) adds exactly the rest."""
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-m", "ddfa.cli.main", "batch", str(many_photos), "--output", str(out),
                             "--engine", "ray", "--address", ray_address, "--assets", str(assets_dir),
                             "--precision", "f32", "--batch-size", "2", "--shard-size", "2", "--workers", "1",
                             "--quiet"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while len(list((out / "images").glob("part-*.parquet"))) < 1:
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "no shard committed in time"
            time.sleep(0.02)
        proc.send_signal(signal.SIGINT)
        stdout, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 130 and "Re-run the same command to resume" in stdout
    assert not (out / "_SUCCESS").exists()
    before = ddfa.io.read_batch(out, "images").column("path").to_pylist()
    inputs = list_inputs(str(many_photos)).paths
    assert 0 < len(before) < len(inputs)

    assert main(["batch", str(many_photos), "--output", str(out), "--engine", "ray", "--address", ray_address,
                 "--assets", str(assets_dir), "--precision", "f32", "--batch-size", "8", "--workers", "1",
                 "--regress-workers", "1",
                 "--quiet"]) == 0
    assert f"{len(before)} already done" in capsys.readouterr().out
    images = ddfa.io.read_batch(out, "images").to_pylist()
    assert sorted(r["path"] for r in images) == sorted(inputs)  # every image exactly once
    faces = ddfa.io.read_batch(out)
    assert json.loads((out / "_SUCCESS").read_text())["counts"]["faces"] == faces.num_rows
    # the rows of both runs equal the aligner's (the path ddfa align takes)
    paths = faces.column("path").to_pylist()
    landmarks = ddfa.io.column_array(faces, "landmarks_68")
    index = faces.column("face_index").to_pylist()
    for path in inputs[::10]:
        expected = default_aligner(path)  # the default detector, in f32 like the run
        rows = sorted((i for i, p in enumerate(paths) if p == path), key=lambda i: index[i])
        assert len(rows) == len(expected), Path(path).name
        for i, face in zip(rows, expected):
            np.testing.assert_allclose(landmarks[i], face.landmarks, atol=1e-3)
