"""Fixtures of the benchmark tests: mb05 on the 2000 AFLW2000-3D crops (computed once)."""

from __future__ import annotations

import json

import numpy as np
import pytest


@pytest.fixture(scope="session")
def aflw2000_dir(data_dir):
    return data_dir / "aflw2000-3d"


@pytest.fixture(scope="session")
def golden_aflw2000(golden_dir):
    """The reference run of 3DDFA's benchmark code on mb05 (see golden/README.md)."""
    return {
        "json": json.loads((golden_dir / "aflw2000_mb05.json").read_text()),
        "params": np.load(golden_dir / "aflw2000_mb05_params.npy"),
        "nme_ori": np.load(golden_dir / "aflw2000_mb05_nme_ori.npy"),
        "nme_re": np.load(golden_dir / "aflw2000_mb05_nme_re.npy"),
    }


@pytest.fixture(scope="session")
def mb05(assets_dir):
    import ddfa

    return ddfa.create_model("mb05", assets=assets_dir, precision="f32")


@pytest.fixture(scope="session")
def reference_result(golden_aflw2000, assets_dir):
    """The reference run (3DDFA's benchmark code on mb05) as a ddfa result, for --compare."""
    from ddfa.eval.protocols import yaw_bins
    from ddfa.eval.report import BenchmarkResult

    ref = golden_aflw2000["json"]
    splits = {"pose": "AFLW2000-3D.pose.npy", "new_pose": "AFLW2000-3D-new.pose.npy"}
    yaw = {k: np.load(assets_dir / "3DDFA/test.configs" / f) for k, f in splits.items()}
    curves = {f"GT {a}, split {f}": {"errors": 100 * golden_aflw2000[f"nme_{a}"].astype(np.float64),
                                     "bins": yaw_bins(yaw[k]), "unit": "%"}
              for a in ("ori", "re") for k, f in splits.items()}
    results = {"nme": {k: {**v, "mean_all": v["mean_over_all_2000"]} for k, v in ref["results"].items()}}
    return BenchmarkResult("aflw2000-3d", {"name": "3DDFA-reference", "weights_sha256": None, "backend": "torch"},
                           {"num_faces": 2000, "frame": "v1", "normalisation": ref["protocol"]["nme"]},
                           results, curves)


@pytest.fixture(scope="session")
def cli_aflw2000(assets_dir, aflw2000_dir, reference_result, built_once):
    """``ddfa benchmark aflw2000-3d --model mb05 --compare reference.json``, run once: the
    end-to-end path (crops read by ddfa, mb05 through the default backend, batch 128)."""

    def run(out):
        import contextlib
        import io

        from ddfa.cli.main import main
        from ddfa.eval.report import write_json

        reference = write_json(reference_result, out / "reference.json")
        printed = io.StringIO()
        with contextlib.redirect_stdout(printed):
            code = main(["benchmark", "aflw2000-3d", "--model", "mb05", "--assets", str(assets_dir), "--data",
                         str(aflw2000_dir), "--output", str(out), "--compare", str(reference)])
        (out / "run.json").write_text(json.dumps({"code": code, "stdout": printed.getvalue()}))

    out = built_once("cli_aflw2000", run)
    return {**json.loads((out / "run.json").read_text()), "out": out}


@pytest.fixture(scope="session")
def aflw2000_result(cli_aflw2000):
    """The result file that run wrote."""
    from ddfa.eval.report import load_json

    return load_json(cli_aflw2000["out"] / "aflw2000-3d_mb05.json")
