"""The ``ddfa`` command line: help texts, ``align`` on the example photos, ONNX export."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import cv2
import numpy as np
import pytest

import ddfa
from ddfa.cli.main import main
from ddfa.io.results import SCHEMA_VERSION


def test_entry_point_help():
    result = subprocess.run([sys.executable, "-m", "ddfa.cli.main", "--help"], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0
    for word in ("align", "assets", "export", "non-commercial"):
        assert word in result.stdout


EXITING_SCRIPT = """
import atexit, sys, threading, time
from pathlib import Path
from ddfa.cli.main import console
out = Path(sys.argv[1])
def late():
    time.sleep(0.5)
    (out / "thread").write_text("written")
threading.Thread(target=late).start()
atexit.register(lambda: (out / "atexit").write_text("ran after the thread" if (out / "thread").exists() else "early"))
sys.stdout.write("x" * 100000)  # block-buffered: a pipe
console(sys.argv[2:])
print("console returned")
"""


@pytest.mark.parametrize("argv, status, said", [(["--version"], 0, "ddfa "), (["align"], 2, "usage:"),
                                                (["align", "missing.jpg", "--output", "{out}/o"], 1, "missing.jpg")])
def test_command_ends_after_threads_atexit_and_flush(tmp_path, argv, status, said):
    # the command skips the interpreter's teardown (os._exit); what results depend on must still
    # happen: non-daemon threads finish, atexit handlers run after them, buffered output is written
    argv = [a.format(out=tmp_path) for a in argv]
    result = subprocess.run([sys.executable, "-c", EXITING_SCRIPT, str(tmp_path), *argv], capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == status, result.stderr
    assert result.stdout.startswith("x" * 100000)
    assert "console returned" not in result.stdout
    assert (tmp_path / "thread").read_text() == "written"
    assert (tmp_path / "atexit").read_text() == "ran after the thread"
    assert said in result.stdout + result.stderr


BLAS_SCRIPT = """
import atexit, sys
import threadpoolctl
atexit.register(lambda: print("BLAS threads", sorted({pool["num_threads"] for pool in threadpoolctl.threadpool_info()
                                                     if pool["user_api"] == "blas"})))
from ddfa.cli.main import console
console(sys.argv[1:])
"""


@pytest.mark.parametrize("env, threads", [({}, 1), ({"OPENBLAS_NUM_THREADS": "2"}, 2)])
def test_command_runs_numpy_blas_on_one_thread_unless_told(tmp_path, assets_dir, env, threads):
    # OpenBLAS's threads spin, busy, for ~0.1 s after every threaded product: a core per photo
    # for a dense mesh's 0.5 ms; the user's own setting is kept
    photo = assets_dir / "3DDFA_V2/examples/inputs/JianzhuGuo.jpg"
    base = {k: v for k, v in os.environ.items() if k not in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS")}
    result = subprocess.run([sys.executable, "-c", BLAS_SCRIPT, "align", str(photo), "--output", str(tmp_path),
                             "--outputs", "none", "--assets", str(assets_dir), "--quiet"],
                            capture_output=True, text=True, timeout=120, env={**base, **env})
    assert result.returncode == 0, result.stderr
    assert json.loads((tmp_path / "JianzhuGuo.jpg.json").read_text())["faces"]  # dense mesh, visibility: BLAS ran
    assert f"BLAS threads [{threads}]" in result.stdout


def test_training_keeps_its_blas_threads():
    # torch's BLAS is OpenBLAS on some platforms (aarch64 wheels) and reads the same setting
    script = ("import atexit, os, sys; atexit.register(lambda: print('set:', os.environ.get('OPENBLAS_NUM_THREADS'))); "
              "from ddfa.cli.main import console; console(sys.argv[1:])")
    base = {k: v for k, v in os.environ.items() if k != "OPENBLAS_NUM_THREADS"}
    said = {command: subprocess.run([sys.executable, "-c", script, command, "--help"], capture_output=True,
                                    text=True, timeout=120, env=base).stdout.splitlines()[-1]
            for command in ("train", "video")}
    assert said == {"train": "set: None", "video": "set: 1"}


def test_align_help_explains_options(capsys):
    with pytest.raises(SystemExit) as info:
        main(["align", "--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    for option in ("--output", "--outputs", "--crop-policy", "--max-faces", "--model", "--assets", "--device",
                   "--backend", "--detector", "2d_sparse"):
        assert option in out


def test_align_example_photos(tmp_path, assets_dir, default_aligner, capsys):
    aligner = default_aligner  # the CLI's default detector (YuNet)
    folder = assets_dir / "3DDFA_V2/examples/inputs"
    code = main(["align", str(folder), "--output", str(tmp_path), "--assets", str(assets_dir), "--quiet",
                 "--precision", "f32"])  # the same numbers as the f32 API aligner
    assert code == 0
    assert "3 image(s) aligned, 8 face(s) found, 0 failure(s)" in capsys.readouterr().out
    # YuNet also finds the two blurred faces behind Emma (FaceBoxes: 3 faces there)
    expected = {"JianzhuGuo": 1, "emma": 5, "trump_hillary": 2}
    for stem, count in expected.items():
        result = json.loads((tmp_path / f"{stem}.jpg.json").read_text())
        assert len(result["faces"]) == count
        face = result["faces"][0]
        assert set(face) >= {"box", "score", "roi_box", "params", "landmarks_68", "pose", "keypoints_5"}
        assert result["schema_version"] == SCHEMA_VERSION and np.shape(face["keypoints_5"]) == (5, 2)
        assert len(face["params"]) == 62 and np.shape(face["landmarks_68"]) == (68, 3)
        assert set(face["pose"]) == {"yaw", "pitch", "roll"}
        api = aligner(str(folder / f"{stem}.jpg"))
        np.testing.assert_allclose(face["landmarks_68"], api[0].landmarks, atol=1e-3)
        overlay = cv2.imread(str(tmp_path / f"{stem}.jpg_2d_sparse.png"))
        photo = cv2.imread(str(folder / f"{stem}.jpg"))
        assert overlay.shape == photo.shape
        # the landmark dots are drawn in green at the landmark positions (hidden ones are rings)
        for (x, y, _), seen in zip(np.round(face["landmarks_68"]).astype(int), face["landmarks_visible"]):
            if not seen:
                continue
            b, g, r = overlay[y, x].astype(int)
            assert g > 150 and g > r + 50 and g > b + 50
    runs = list((tmp_path / ".ddfa" / "runs").iterdir())
    assert len(runs) == 1 and json.loads((runs[0] / "failures.json").read_text()) == []


def test_two_step_and_face_limit_options(tmp_path, assets_dir, capsys):
    photo = assets_dir / "3DDFA_V2/examples/inputs/emma.jpg"
    assert main(["align", str(photo), "--output", str(tmp_path), "--assets", str(assets_dir), "--max-faces", "1",
                 "--crop-policy", "landmarks", "--outputs", "none"]) == 0
    result = json.loads((tmp_path / "emma.jpg.json").read_text())
    assert len(result["faces"]) == 1 and not (tmp_path / "emma.jpg_2d_sparse.png").exists()
    assert main(["align", str(photo), "--output", str(tmp_path), "--assets", str(assets_dir),
                 "--outputs", "no-such-output"]) == 1
    assert "unknown output" in capsys.readouterr().err


def test_export_onnx_matches_torch(tmp_path, assets_dir, pipeline_golden):
    import onnxruntime as ort

    path = tmp_path / "mb05.onnx"
    assert main(["export", "onnx", "--model", "mb05", "--assets", str(assets_dir), "--output", str(path)]) == 0
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    from ddfa.nets.registry import preprocess_crops

    out = session.run(None, {session.get_inputs()[0].name: preprocess_crops(pipeline_golden["crop"])})[0]
    np.testing.assert_allclose(out, pipeline_golden["param_raw"], atol=1e-4)
    v2 = tmp_path / "mb05_v2.pth"
    assert main(["export", "v2-checkpoint", "--model", "mb05", "--assets", str(assets_dir), "--output", str(v2)]) == 0
    reloaded = ddfa.create_model(str(v2), assets=assets_dir, backend="torch")
    np.testing.assert_allclose(reloaded.predict_whitened(pipeline_golden["crop"]), pipeline_golden["param_raw"],
                               atol=1e-4)


def test_interrupt_turned_into_a_library_error_is_still_an_interrupt(monkeypatch, capsys):
    # CI caught Ctrl-C landing while openvino's pybind11 module was being imported: the module's
    # init swallows the KeyboardInterrupt and raises ImportError("initialization failed"), which
    # ended as "internal error ... a bug in ddfa", exit 70
    import argparse
    import os
    import signal
    import time

    import ddfa.cli.main as cli_main

    def swallowing_import(args):
        try:
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(5)
        except KeyboardInterrupt:
            swallowed = True
        assert swallowed
        raise ImportError("initialization failed")  # no chain back to the interrupt

    parser = argparse.ArgumentParser()
    parser.set_defaults(func=swallowing_import)
    monkeypatch.setattr(cli_main, "build_parser", lambda command=None: parser)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    assert main([]) == 130
    assert capsys.readouterr().err.strip() == "ddfa: interrupted"
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # Python's handler is back

    def plain_bug(args):
        raise ImportError("initialization failed")

    parser.set_defaults(func=plain_bug)
    assert main([]) == 70 and "internal error" in capsys.readouterr().err
