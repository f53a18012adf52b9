"""Engines: the choice of "auto", OpenVINO's compiled shapes and threads, no busy-waiting, the
verified converted-model cache, int8, and an inference path that imports neither torch nor onnx."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

import ddfa
from ddfa.errors import InputError
from ddfa.nets import engines
from ddfa.nets.model_cache import converted_model

HAS_OPENVINO = engines.openvino_available()
needs_openvino = pytest.mark.skipif(not HAS_OPENVINO, reason="OpenVINO is not installed")
HEAVY = ("torch", "onnx", "onnxruntime", "openvino", "scipy", "numba", "matplotlib")


def test_auto_choice_follows_the_cpu_and_what_is_installed(monkeypatch):
    for flag, expected in (("1", "openvino" if HAS_OPENVINO else "onnxruntime"), ("0", "onnxruntime")):
        monkeypatch.setenv(engines.ENV_BF16, flag)
        engines.cpu_native_bf16.cache_clear()
        assert engines.choose_backend("auto", "cpu") == expected
        assert engines.resolve_precision("auto", "openvino") == ("bf16" if flag == "1" else "f32")
    engines.cpu_native_bf16.cache_clear()
    monkeypatch.delenv(engines.ENV_BF16)
    assert engines.resolve_precision("auto", "onnxruntime") == "f32"
    assert engines.resolve_precision("int8", "openvino") == ("bf16" if engines.cpu_native_bf16() else "f32")
    assert engines.resolve_precision("int8", "onnxruntime", int8=True) == "int8"
    with pytest.raises(InputError, match="bf16"):
        engines.resolve_precision("bf16", "onnxruntime")
    with pytest.raises(InputError, match="int8"):
        engines.resolve_precision("int8", "torch", int8=True)
    with pytest.raises(InputError, match="precision"):
        ddfa.BaseOptions(precision="fp8")
    monkeypatch.setattr(engines, "openvino_available", lambda: False)
    with pytest.raises(InputError, match="openvino"):
        engines.choose_backend("openvino", "cpu")


@needs_openvino
def test_bf16_where_openvino_cannot_compute_it_is_a_clear_error(monkeypatch, tmp_path, assets_dir, example_images,
                                                                capsys):
    """On a CPU without AVX-512 OpenVINO takes a bf16 request and computes float32: ddfa says so
    instead of reporting bf16 results. (This CPU's own answer is taken where it has bf16.)"""
    from ddfa.cli.main import main
    from ddfa.nets import openvino_backend

    photo = str(example_images["JianzhuGuo.jpg"])
    monkeypatch.setenv(engines.ENV_BF16, "0")
    engines.cpu_native_bf16.cache_clear()
    try:
        if openvino_backend.openvino_computes_bf16():  # emulated on AVX-512 without BF16: allowed
            emulated = ddfa.create_model("mb05", assets=assets_dir, backend="openvino", precision="bf16")
            assert emulated.precision == "bf16"
        monkeypatch.setattr(openvino_backend, "openvino_computes_bf16", lambda: False)
        with pytest.raises(InputError, match="cannot compute bfloat16"):
            ddfa.FaceAligner(assets=assets_dir, backend="openvino", precision="bf16")
        assert main(["align", photo, "--assets", str(assets_dir), "--backend", "openvino", "--precision", "bf16",
                     "--output", str(tmp_path / "out"), "--quiet"]) == 1
        assert not (tmp_path / "out").exists()  # refused before any output folder is made
        err = capsys.readouterr().err
        assert err.startswith("ddfa: error: precision='bf16': OpenVINO cannot compute") and err.count("\n") == 1
        aligner = ddfa.FaceAligner(assets=assets_dir, backend="openvino", precision="f32")
        assert aligner.regressor.precision == "f32" and len(aligner(photo)) == 1
    finally:
        engines.cpu_native_bf16.cache_clear()


def _cpu_seconds_while_idle(seconds: float = 0.3) -> float:
    start = time.process_time()
    time.sleep(seconds)
    return time.process_time() - start


@pytest.mark.parametrize("engine", ["onnxruntime", pytest.param("openvino", marks=needs_openvino)])
def test_engine_threads_sleep_when_idle(engine, assets_dir, pipeline_golden):
    """After a run the engine's threads must not spin: 0.3 s idle costs (almost) no CPU time."""
    regressor = ddfa.create_model("mb05", assets=assets_dir, backend=engine, threads=2)
    for _ in range(3):
        regressor(pipeline_golden["crop"])
    assert _cpu_seconds_while_idle() < 0.1


@needs_openvino
def test_openvino_compiles_once_per_shape_and_honours_threads(assets_dir, example_images):
    from ddfa.detect.faceboxes import FaceBoxesDetector

    base = ddfa.BaseOptions(assets=assets_dir, backend="openvino", threads=1)
    image = ddfa.read_image(example_images["trump_hillary.jpg"])
    yunet = ddfa.create_detector("yunet", base_options=base)
    for _ in range(2):  # YuNet's down-scaled photos: a compiled model per input shape
        yunet.detect(cv2.resize(image, (1280, 720)))
        yunet.detect(cv2.resize(image, (720, 1280)))
    assert [key[0] for key in yunet.runner.compiled_shapes] == [(1, 384, 640, 3), (1, 640, 384, 3)]
    compiled = next(iter(yunet.runner._compiled.values())).compiled
    assert int(compiled.get_property("INFERENCE_NUM_THREADS")) == 1
    # FaceBoxes' input is the photo (or its fit into 720 x 1080): one side of any length, so
    # every size runs on one dynamic-shape model (in f32, within 0.05 px of onnxruntime)
    faceboxes = FaceBoxesDetector(base_options=base.replace(precision="f32"))
    small = ddfa.read_image(example_images["JianzhuGuo.jpg"])
    found = [faceboxes.detect(photo) for photo in (small, small[:300, :400], image)]
    assert faceboxes._runner.compiled_shapes == ["dynamic"]
    reference = FaceBoxesDetector(base_options=base.replace(backend="onnxruntime", precision="f32"))
    for photo, got in zip((small, small[:300, :400], image), found):
        np.testing.assert_allclose(got.boxes, reference.detect(photo).boxes, atol=0.05)
    regressor = ddfa.create_model("mb05", assets=assets_dir, backend="openvino", precision="f32")
    crops = np.zeros((12, 120, 120, 3), np.uint8)
    regressor(crops[:1]), regressor(crops[:5]), regressor(crops), regressor(crops[:11]), regressor(crops[:1])
    # small batches compiled per size, larger ones share one dynamic-shape model
    shapes = regressor._get_runner().compiled_shapes
    assert len(shapes) == 3 and {"dynamic", ((1, 120, 120, 3), None), ((5, 120, 120, 3), None)} == set(shapes)


@needs_openvino
def test_photos_of_many_small_sizes_share_one_compiled_detector(assets_dir, example_images):
    """YuNet on OpenVINO: photos under the working resolution (any size) run on one dynamic-shape
    model, not one compiled model each (0.2-0.3 s per size); down-scaled photos and tiles (a few
    shapes) get their own. Which model runs depends on the shape only: a photo's detections do
    not depend on what ran before, or on being prepared for."""
    image = ddfa.read_image(example_images["emma.jpg"])
    small = [cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA) for h, w in ((300, 400), (333, 287), (410, 390),
                                                                                  (300, 400))]
    large = cv2.resize(image, (1280, 720))
    detector = ddfa.create_detector("yunet", base_options=ddfa.BaseOptions(assets=assets_dir, backend="openvino"))
    found = [detector.detect(photo) for photo in [*small, large]]
    assert detector.runner.compiled_shapes == ["dynamic", ((1, 384, 640, 3), None)]
    fresh = ddfa.create_detector("yunet", base_options=ddfa.BaseOptions(assets=assets_dir, backend="openvino"))
    fresh.prepare([small[2].shape[:2]])
    again = fresh.detect(small[2])
    np.testing.assert_array_equal(again.boxes, found[2].boxes)
    np.testing.assert_array_equal(again.scores, found[2].scores)
    assert len(found[2]) and len(found[4])


@needs_openvino
def test_prepared_detector_has_the_shapes_detect_runs(assets_dir, example_images):
    """FaceAligner.prepare((h, w)) compiles (or imports) in the background exactly the input
    shapes the detector then runs for such a photo; the faces are the same as unprepared."""
    image = ddfa.read_image(example_images["trump_hillary.jpg"])
    options = {"min_face": 16}  # a multi-pass plan: tiles of the finer passes too
    plain = ddfa.FaceAligner(assets=assets_dir, backend="openvino", detector_options=options)
    expected = plain.detector.detect(image)
    prepared = ddfa.FaceAligner(assets=assets_dir, backend="openvino", detector_options=options)
    shapes = prepared.detector.input_shapes(*image.shape[:2])
    assert len(shapes) > 1
    prepared.prepare([image.shape[:2]])
    runner, deadline = prepared.detector.runner, time.monotonic() + 120
    while len(runner.compiled_shapes) < len(shapes):  # ready in the background
        assert time.monotonic() < deadline, runner.compiled_shapes
        time.sleep(0.01)
    assert sorted(key[0] for key in runner.compiled_shapes) == sorted(shapes)  # (each ready in its own thread)
    got = prepared.detector.detect(image)
    assert sorted(key[0] for key in runner.compiled_shapes) == sorted(shapes)  # nothing compiled on the way
    np.testing.assert_array_equal(got.boxes, expected.boxes)


def test_openvino_prepares_models_side_by_side_and_each_once(assets_dir, monkeypatch):
    """Each shape's model is prepared in its own thread: a call waits only for the model it runs
    on (not for another shape still being imported), and a shape wanted by several threads at
    once is imported or compiled once."""
    from ddfa.nets.openvino_backend import OpenVinoRunner

    small, tiles = (1, 288, 640, 3), (2, 352, 640, 3)  # trump_hillary.jpg's two passes
    detector = ddfa.create_detector("yunet", base_options=ddfa.BaseOptions(assets=assets_dir, backend="openvino"))
    runner = detector.runner
    assert isinstance(runner, OpenVinoRunner)
    held, loads, original = threading.Event(), [], runner._load

    def load(key, shape, resize_to):
        loads.append(key)
        if shape == tiles:
            assert held.wait(60)
        return original(key, shape, resize_to)

    monkeypatch.setattr(runner, "_load", load)  # (this runner only)
    runner.compile_in_background(small, tiles)
    frame = np.zeros(small, np.uint8)
    first = runner(frame)  # runs while the tiles' model is held back
    assert [key[0] for key in runner.compiled_shapes] == [small]
    results: list = []
    callers = [threading.Thread(target=lambda: results.append(runner(np.zeros(tiles, np.uint8)))) for _ in range(3)]
    for caller in callers:
        caller.start()
    held.set()
    for caller in callers:
        caller.join(60)
    assert len(results) == 3 and sorted(key[0] for key in runner.compiled_shapes) == sorted([small, tiles])
    assert sorted(key[0] for key in loads) == sorted([small, tiles])  # each once
    for got in results[1:]:
        for a, b in zip(got, results[0]):
            np.testing.assert_array_equal(a, b)
    for a, b in zip(runner(frame), first):
        np.testing.assert_array_equal(a, b)


def test_converted_cache_is_keyed_verified_and_rebuilt_when_tampered(tmp_path, monkeypatch, assets_dir,
                                                                    pipeline_golden, capfd):
    monkeypatch.setenv("DDFA_CACHE", str(tmp_path))
    crops, expected = pipeline_golden["crop"], pipeline_golden["param_raw"]
    first = ddfa.create_model("mb05", assets=assets_dir, backend="onnxruntime")
    assert "converting regressor 'mb05' to ONNX (first use" in capfd.readouterr().err
    entry = Path(first.converted().path).parent
    manifest = json.loads((entry / "manifest.json").read_text())
    assert manifest["source_sha256"] == first.weights_sha256 and entry.name.startswith(
        f"regressor-{first.weights_sha256[:16]}-r")
    assert manifest["files"]["model.onnx"] == first.converted().sha256
    assert manifest["meta"]["whitening"] == {"name": "v2"}

    again = ddfa.create_model("mb05", assets=assets_dir, backend="onnxruntime")
    assert capfd.readouterr().err == ""  # verified and used as it is
    assert again._net is None  # no checkpoint read, no torch module built
    np.testing.assert_allclose(again.predict_whitened(crops), expected, atol=1e-4)

    model = entry / "model.onnx"
    data = bytearray(model.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped byte in the weights
    model.write_bytes(bytes(data))
    rebuilt = ddfa.create_model("mb05", assets=assets_dir, backend="onnxruntime")
    assert "failed verification" in capfd.readouterr().err
    np.testing.assert_allclose(rebuilt.predict_whitened(crops), expected, atol=1e-4)

    manifest = json.loads((entry / "manifest.json").read_text())
    manifest["source_sha256"] = "0" * 64  # a manifest of other weights
    (entry / "manifest.json").write_text(json.dumps(manifest))
    ddfa.create_model("mb05", assets=assets_dir, backend="onnxruntime")
    assert "failed verification" in capfd.readouterr().err


def test_converted_model_is_kept_in_memory_when_the_cache_is_not_writable(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    made = converted_model("thing", source_sha256="ab" * 32, recipe=1, cache_dir=blocker,
                           build=lambda: (b"bytes", {"k": 1}), describe="a thing", quiet=True)
    assert made.path is None and made.data == b"bytes" and made.meta == {"k": 1}


def test_a_conversion_may_need_another_cached_conversion(tmp_path):
    """Building one cache entry may need another (the int8 regressor is calibrated on faces of
    the morphable model, itself cached): it deadlocked on one lock for the whole cache."""
    def outer_build():
        inner = converted_model("inner", source_sha256="cd" * 32, recipe=1, cache_dir=tmp_path,
                                build=lambda: (b"inner", {}), describe="inner", quiet=True)
        return inner.path.read_bytes() + b"+outer", {}

    made = []
    worker = threading.Thread(target=lambda: made.append(converted_model(
        "outer", source_sha256="ab" * 32, recipe=1, cache_dir=tmp_path, build=outer_build, describe="outer",
        quiet=True)), daemon=True)
    worker.start()
    worker.join(timeout=60)
    assert made and made[0].path.read_bytes() == b"inner+outer"


def _join_openvino_compile_threads() -> None:
    """Wait for the models OpenVINO runners prepare in the background (their blobs written)."""
    for thread in threading.enumerate():
        if thread.name == "ddfa-openvino-compile":
            thread.join(120)


@needs_openvino
def test_tampered_openvino_blob_is_compiled_again(tmp_path, monkeypatch, assets_dir, pipeline_golden):
    monkeypatch.setenv("DDFA_CACHE", str(tmp_path))
    crops = pipeline_golden["crop"]
    reference = ddfa.create_model("mb05", assets=assets_dir, backend="openvino", precision="f32")(crops)
    _join_openvino_compile_threads()  # the 1-crop model, prepared in the background meanwhile
    blobs = [p for p in tmp_path.rglob("*") if p.is_file() and p.parent.name.startswith("f32-")
             and p.name != "blobs.json"]
    assert blobs, "OpenVINO wrote no compiled blob"
    for blob in blobs:
        blob.write_bytes(b"\0" * blob.stat().st_size)
    again = ddfa.create_model("mb05", assets=assets_dir, backend="openvino", precision="f32")(crops)
    _join_openvino_compile_threads()
    np.testing.assert_allclose(again, reference, atol=1e-5)
    assert all(blob.read_bytes().strip(b"\0") for blob in blobs if blob.exists())


def test_int8_keeps_first_conv_and_head_in_float_and_stays_close(assets_dir, pipeline_golden):
    import onnx

    from ddfa.nets.onnx_backend import OnnxRunner
    from ddfa.nets.quantize import quantize_regressor
    from ddfa.nets.registry import preprocess_crops

    f32 = ddfa.create_model("mb05", assets=assets_dir, backend="onnxruntime", precision="f32")
    source = Path(f32.converted().path).read_bytes()
    crops = pipeline_golden["crop"]
    int8 = quantize_regressor(source, np.concatenate([crops, pipeline_golden["track_crop"]]))
    graph = onnx.load_from_string(int8).graph
    producers = {out: node for node in graph.node for out in node.output}
    convs = [n for n in graph.node if n.op_type == "Conv"]
    heads = [n for n in graph.node if n.op_type in ("Gemm", "MatMul")]
    quantised = [n for n in convs if producers.get(n.input[0]) is not None
                 and producers[n.input[0]].op_type == "DequantizeLinear"]
    assert convs[0] not in quantised and len(quantised) == len(convs) - 1
    assert heads and all(producers.get(i) is None or producers[i].op_type != "DequantizeLinear"
                         for n in heads for i in n.input)  # float weights, unquantised features
    raw = OnnxRunner(int8)(preprocess_crops(crops))[0]
    err = np.abs(raw - pipeline_golden["param_raw"])
    assert 1e-3 < err.max() < 0.5  # quantised (not the float graph), and still the same faces


def _run(code: str, *args: str, env=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args, "-c", code], capture_output=True, text=True, timeout=300,
                          env={**os.environ, **(env or {})})


def test_help_imports_nothing_heavy():
    done = _run("from ddfa.cli.main import main\nimport contextlib, io\n"
                "with contextlib.redirect_stdout(io.StringIO()):\n"
                "    try:\n        main(['--help'])\n    except SystemExit:\n        pass", "-X", "importtime")
    assert done.returncode == 0, done.stderr
    imported = {line.split("|")[-1].strip().split(".")[0] for line in done.stderr.splitlines()
                if line.startswith("import time:")}
    assert "ddfa" in imported and not imported & set(HEAVY), sorted(imported & set(HEAVY))


def test_start_up_leaves_opencv_for_the_first_photo(assets_dir):
    # `ddfa align` parses its options and sets the detector up (OpenVINO imports its compiled
    # network in the background) before OpenCV's 0.13 s import, which then overlaps that work
    done = _run(f"""
import sys
from ddfa.cli.main import build_parser
from ddfa.detect import create_detector
from ddfa.runtime import BaseOptions
build_parser("align")
detector = create_detector("yunet", base_options=BaseOptions(assets={str(assets_dir)!r}))
detector.prepare([(551, 413)])
print("cv2" in sys.modules)
""")
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["False"]


@pytest.mark.parametrize("engine", ["onnxruntime", pytest.param("openvino", marks=needs_openvino)])
def test_inference_path_imports_neither_torch_nor_onnx_once_cached(engine, assets_dir, example_images, tmp_path):
    photo = example_images["JianzhuGuo.jpg"]
    ddfa.FaceAligner(assets=assets_dir, backend=engine)(photo)  # fills the cache (DDFA_CACHE of the tests)
    code = f"""
import sys
import ddfa
from ddfa.cli.main import main
faces = ddfa.FaceAligner(assets={str(assets_dir)!r}, backend={engine!r})({str(photo)!r})
assert len(faces) == 1
assert main(["align", {str(photo)!r}, "--assets", {str(assets_dir)!r}, "--backend", {engine!r},
             "--outputs", "none", "--output", {str(tmp_path)!r}, "--quiet"]) == 0
print(sorted(m for m in ("torch", "onnx") if m in sys.modules))
"""
    done = _run(code)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "[]"
    assert "converting" not in done.stderr
    assert len(json.loads((tmp_path / "JianzhuGuo.jpg.json").read_text())["faces"]) == 1


@needs_openvino
def test_openvino_imports_its_cached_blob_without_reading_the_graph(tmp_path, monkeypatch, assets_dir,
                                                                    pipeline_golden):
    monkeypatch.setenv("DDFA_CACHE", str(tmp_path))
    crops = pipeline_golden["crop"][:1]
    reference = ddfa.create_model("mb05", assets=assets_dir, backend="openvino", precision="f32")(crops)
    again = ddfa.create_model("mb05", assets=assets_dir, backend="openvino", precision="f32")
    np.testing.assert_allclose(again(crops), reference, atol=1e-5)
    assert again._get_runner()._read is None  # compiled network imported, ONNX graph never read


def test_processes_starting_together_convert_once(tmp_path):
    """Worker processes starting together on an empty cache (a batch's pool, Ray actors) wait
    for the one that converts a model instead of each converting it again (each worker of
    ``ddfa batch --workers 2`` exported the regressor)."""
    code = ("import sys, time\n"
            "from ddfa.nets.model_cache import converted_model\n"
            "time.sleep(max(0.0, float(sys.argv[1]) - time.time()))\n"
            "def build():\n"
            "    time.sleep(0.5)  # a conversion takes a while\n"
            "    return b'converted', {}\n"
            f"made = converted_model('thing', source_sha256='ab' * 32, recipe=1, cache_dir={str(tmp_path)!r},\n"
            "                       build=build, describe='a thing')\n"
            "print(made.path.read_bytes().decode())\n")
    start = str(time.time() + 1.0)  # all ask at the same moment
    procs = [subprocess.Popen([sys.executable, "-c", code, start], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for _ in range(3)]
    results = [proc.communicate(timeout=120) for proc in procs]
    assert all(proc.returncode == 0 for proc in procs), [err for _, err in results]
    assert [out.strip() for out, _ in results] == ["converted"] * 3
    assert sum(err.count("ddfa: converting a thing") for _, err in results) == 1


def test_processes_starting_together_agree_on_one_cache_key(tmp_path):
    """The cache's signing key is made by whichever process comes first; others starting at the
    same moment (test workers, a batch's process pool) must read that whole key, never a
    half-written one, or each would sign and distrust the others' cached models."""
    config = tmp_path / "config"
    code = ("import os, sys, time\n"
            "from ddfa.nets.model_cache import cache_key\n"
            "time.sleep(max(0.0, float(sys.argv[1]) - time.time()))\n"
            "sys.stdout.write(cache_key().hex())\n")
    start = time.time() + 1.5
    procs = [subprocess.Popen([sys.executable, "-c", code, str(start)], stdout=subprocess.PIPE, text=True,
                              env=dict(os.environ, DDFA_CONFIG=str(config))) for _ in range(8)]
    keys = {proc.communicate(timeout=60)[0] for proc in procs}
    assert len(keys) == 1 and len(bytes.fromhex(keys.pop())) == 32
    assert [p.name for p in config.iterdir()] == ["cache.key"]  # no temporary file left
    (config / "cache.key").write_bytes(b"short")  # a damaged key is replaced, not used
    from ddfa.nets.model_cache import _key_for

    assert len(_key_for(config / "cache.key")) == 32 == len((config / "cache.key").read_bytes())


@needs_openvino
def test_exit_right_after_start_up_is_clean(assets_dir):
    """A script that builds an aligner and ends at once (``FaceAligner(...)`` then exit) used to
    abort in 3 runs of 4 ("terminate called without an active exception", or a segfault): the
    interpreter killed the thread still compiling in OpenVINO. It must exit 0, every time."""
    code = ("import ddfa\n"
            f"ddfa.FaceAligner(assets={str(assets_dir)!r}, backend='openvino')\n")
    for _ in range(4):
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0 and "terminate" not in proc.stderr, (proc.returncode, proc.stderr[-500:])
