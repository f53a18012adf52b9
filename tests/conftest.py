"""Shared fixtures: the real upstream assets, golden references and benchmark data.

The data lives outside the repository, in ``../shared`` beside the checkout (override with
``DDFA_SHARED=/path/to/shared``); the asset directory can also be set with ``DDFA_HOME``.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("DDFA_SHARED", REPO.parent / "shared")).resolve()
# pytest-xdist runs several test processes on the machine's cores: each runs its engines (and
# torch) on one thread, so that their thread pools do not fight over the cores (measured on 2
# cores: 5% less CPU time and wall time); the tests that are about threads set them explicitly
if int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")) > 1:
    os.environ.setdefault("DDFA_THREADS", "1")
    os.environ.setdefault("OMP_NUM_THREADS", "1")
# a shell that starts pytest in the background (`cmd &` without job control) makes it ignore
# SIGINT, and every process it starts inherits that: the tests that stop ddfa with Ctrl-C need
# Python's own handler
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)
# converted files (ONNX exports) of test runs stay inside the checkout, ignored by git
os.environ.setdefault("DDFA_CACHE", str(REPO / ".cache" / "ddfa"))
# ... and so does the key the cache's manifests are signed with (ddfa.nets.model_cache.cache_key)
os.environ.setdefault("DDFA_CONFIG", str(REPO / ".cache" / "ddfa-config"))


#: the test files that run longest (several processes each: a Ray cluster, DDP under torchrun, a
#: process pool, engines in subprocesses), started first, one per test process, so that the
#: processes end together: pytest-xdist would otherwise order files by their number of tests,
#: which put these one-test files last, running beside each other while the other cores idled
#: at the end (`--no-loadscope-reorder` in the pytest settings keeps this order)
LONGEST_FIRST = ("tests/batch/test_batch_ray.py", "tests/train/test_ddp.py", "tests/batch/test_batch_local.py",
                 "tests/core/test_engines.py", "tests/core/test_cli_refine.py", "tests/train/test_trainer.py")


def pytest_collection_modifyitems(config, items):
    rank = {path: i for i, path in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.nodeid.split("::")[0], len(rank)))  # stable: the rest as collected


def _require(path: Path) -> Path:
    if not path.exists():
        pytest.fail(f"test data not found at {path}; set DDFA_SHARED to the shared data folder", pytrace=False)
    return path


@pytest.fixture(scope="session")
def built_once(tmp_path_factory):
    """``built_once(name, build) -> folder``: a folder that ``build(folder)`` fills once per test
    run, shared by the pytest-xdist workers (the first one to ask builds it under a file lock,
    the others wait and read it), for expensive data several test files read."""
    import shutil

    from filelock import FileLock

    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent  # the run's folder, above each worker's own

    def get(name: str, build) -> Path:
        folder = root / f"built-once-{name}"
        with FileLock(str(folder) + ".lock"):
            if not (folder / ".complete").exists():
                shutil.rmtree(folder, ignore_errors=True)
                folder.mkdir(parents=True)
                build(folder)
                (folder / ".complete").touch()
        return folder

    return get


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    return _require(SHARED)


@pytest.fixture(scope="session")
def assets_dir() -> Path:
    env = os.environ.get("DDFA_HOME")
    return _require(Path(env) if env else SHARED / "assets")


@pytest.fixture(scope="session")
def store(assets_dir):
    from ddfa.assets import AssetStore

    return AssetStore(assets_dir)


@pytest.fixture(scope="session")
def golden_dir() -> Path:
    return _require(SHARED / "golden")


@pytest.fixture(scope="session")
def data_dir() -> Path:
    return _require(SHARED / "data")


@pytest.fixture(scope="session")
def pipeline_golden(golden_dir):
    return dict(np.load(golden_dir / "pipeline_mb05.npz"))


@pytest.fixture(scope="session")
def example_images(assets_dir) -> dict[str, Path]:
    """The four photos of the golden pipeline run, by file name."""
    return {
        "JianzhuGuo.jpg": assets_dir / "3DDFA_V2/examples/inputs/JianzhuGuo.jpg",
        "emma.jpg": assets_dir / "3DDFA_V2/examples/inputs/emma.jpg",
        "trump_hillary.jpg": assets_dir / "3DDFA_V2/examples/inputs/trump_hillary.jpg",
        "image00427.jpg": assets_dir / "3DDFA/visualize/image00427.jpg",
    }


@pytest.fixture(scope="session")
def noneck_model(store):
    from ddfa.morphable import load_morphable_model

    return load_morphable_model(store, "noneck")


@pytest.fixture(scope="session")
def full_model(store):
    from ddfa.morphable import load_morphable_model

    return load_morphable_model(store, "full")


@pytest.fixture(scope="session")
def aligner(assets_dir):
    """mb05 + FaceBoxes in float32 on the "auto" engine (OpenVINO or onnxruntime, whichever it
    picks here): 3DDFA_V2's pipeline, for the golden parity tests."""
    import ddfa

    return ddfa.FaceAligner(assets=assets_dir, detector="faceboxes", precision="f32")


@pytest.fixture(scope="session")
def default_aligner(assets_dir):
    """The default FaceAligner (mb05 + YuNet, the "auto" engine) in float32, the numbers that
    ``ddfa align --precision f32`` gives (the precisions themselves are tested in test_engines
    and the parity tests)."""
    import ddfa

    return ddfa.FaceAligner(assets=assets_dir, precision="f32")


from engines import ENGINES  # noqa: E402  (tests/engines.py: the engine matrix)


@pytest.fixture(scope="session")
def engine_aligners(assets_dir):
    """One FaceAligner per engine configuration, built on first request."""
    import ddfa

    made: dict = {}

    def get(name: str):
        if name not in made:
            made[name] = ddfa.FaceAligner(assets=assets_dir, detector="faceboxes", **ENGINES[name])
        return made[name]

    return get


@pytest.fixture(scope="session")
def torch_aligner(assets_dir):
    """mb05 + FaceBoxes on the torch backend (the reference path)."""
    import ddfa

    return ddfa.FaceAligner(assets=assets_dir, backend="torch", detector="faceboxes")
