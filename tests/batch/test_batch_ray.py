"""``ddfa batch --engine ray`` on a local Ray with 2 CPUs: a driver stopped with SIGINT half way
resumes with every image exactly once, and the rows of both runs (both plans: one CPU actor
pool, then detection and regression actors) equal ``ddfa align``'s, failures included. (One
scenario: every Ray run costs ~10 s of start-up on a 2-core machine.)"""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import pytest

import ddfa
from ddfa.cli.main import main

# Ray Data's own deprecated settings, warned about from inside Ray
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:ray.*")


@pytest.fixture(scope="module")
def ray_address():
    """A local Ray with 2 CPUs, owned by this test module."""
    import ray  # (here: the test process that does not run this file does not import it)

    started = not ray.is_initialized()
    if started:
        ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR")
    yield ray.get_runtime_context().gcs_address
    if started:
        ray.shutdown()


def test_ray_sigint_then_resume_equals_align(tmp_path, ray_address, ray_folder, assets_dir, capsys):
    """A driver stopped with SIGINT half way (one CPU actor pool) commits what it received and
    exits 130; the re-run (detection and regression in separate actor pools) adds exactly the
    rest: the tables then hold ``ddfa align``'s results for every image, its failures included."""
    folder, check_tables = ray_folder
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-m", "ddfa.cli.main", "batch", str(folder.root), "--output", str(out),
                             "--engine", "ray", "--address", ray_address, "--assets", str(assets_dir),
                             "--batch-size", "2", "--shard-size", "2", "--workers", "1", "--quiet"],
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
    assert 0 < len(before) < len(folder.inputs)

    assert main(["batch", str(folder.root), "--output", str(out), "--engine", "ray", "--address", ray_address,
                 "--assets", str(assets_dir), "--batch-size", "8", "--workers", "1", "--regress-workers", "1",
                 "--quiet"]) == 1  # the broken files
    assert f"{len(before)} already done" in capsys.readouterr().out
    success = check_tables(out)  # every image exactly once, as ddfa align
    assert success["options"]["engine"] == "ray"
    assert success["run"]["processed"] == len(folder.inputs) - len(before)
