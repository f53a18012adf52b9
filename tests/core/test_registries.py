"""Registries and caches: models, architectures and detectors round-trip through the facade and
the CLI; caches are keyed on content and can be cleared; the three bugs of issue 10."""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import pytest
import torch

import ddfa
from ddfa.cli.main import main
from ddfa.detect.base import DETECTORS, Detections
from ddfa.errors import AssetError, InputError
from ddfa.nets.checkpoint import make_ddfa_checkpoint
from ddfa.nets.registry import ARCHITECTURES, MODELS, ModelSpec, register_architecture


@pytest.fixture()
def mb05_copy(tmp_path, store):
    """mb05's weights re-saved in ddfa's checkpoint layout, outside the asset folder."""
    regressor = ddfa.create_model("mb05", assets=store, backend="torch")
    path = tmp_path / "mb05-copy.pth"
    torch.save(make_ddfa_checkpoint(regressor.net, arch="mobilenet_v1", width=0.5,
                                    whitening=regressor.whitening), path)
    return path


def _landmarks(aligner, image):
    return np.stack([f.landmarks for f in aligner(image)])


# ---------------------------------------------------------------------- bugs
def test_from_array_sorts_best_first():
    dets = Detections.from_array([[0, 0, 10, 10, 0.2], [20, 20, 40, 40, 0.9], [5, 5, 9, 9, 0.5]])
    np.testing.assert_allclose(dets.scores, [0.9, 0.5, 0.2])
    np.testing.assert_allclose(dets.boxes[0], [20, 20, 40, 40])
    kept = dets.top(1)
    assert len(kept) == 1 and kept.scores[0] == pytest.approx(0.9)


def test_max_faces_keeps_the_best_given_box(aligner, example_images):
    image = example_images["emma.jpg"]
    boxes = [[0, 0, 40, 40, 0.2], [60, 40, 200, 220, 0.9]]
    faces = aligner(image, boxes=boxes, max_faces=1)
    assert len(faces) == 1 and faces[0].score == pytest.approx(0.9)


def test_create_model_sees_an_overwritten_checkpoint(tmp_path, mb05_copy, store):
    first = ddfa.create_model(mb05_copy, assets=store, backend="torch")
    second = ddfa.create_model(mb05_copy, assets=store, backend="torch")
    assert first is not second and first.net is not second.net  # no shared mutable regressor
    with torch.no_grad():
        first.net.fc.bias.add_(1.0)  # changing one regressor leaves the next one alone
    third = ddfa.create_model(mb05_copy, assets=store, backend="torch")
    assert torch.equal(third.net.fc.bias, second.net.fc.bias)

    ckpt = torch.load(mb05_copy, weights_only=True)
    ckpt["state_dict"]["fc.bias"] = ckpt["state_dict"]["fc.bias"] + 0.5
    torch.save(ckpt, mb05_copy)  # overwritten in place, same path
    changed = ddfa.create_model(mb05_copy, assets=store, backend="torch")
    assert torch.allclose(changed.net.fc.bias, second.net.fc.bias + 0.5)
    assert changed.weights_sha256 != second.weights_sha256


def test_load_morphable_model_takes_a_path(assets_dir, store):
    by_path = ddfa.load_morphable_model(str(assets_dir))
    by_store = ddfa.load_morphable_model(store)
    assert by_path is by_store  # one cache, keyed on the files' content
    assert by_path.num_vertices == 38365
    with pytest.raises(InputError, match="variant"):
        ddfa.load_morphable_model(store, "neck")


def test_clear_caches(store):
    ddfa.load_morphable_model(store)
    assert ddfa.cache_info()["morphable models"] >= 1
    ddfa.clear_caches()
    assert all(n == 0 for n in ddfa.cache_info().values())
    again = ddfa.load_morphable_model(store)
    assert again.num_vertices == 38365


# ---------------------------------------------------------------------- models
def test_register_model_through_facade_and_cli(tmp_path, mb05_copy, assets_dir, default_aligner, example_images,
                                              capsys):
    ddfa.register_model(ModelSpec(name="mb05-copy-test", weights=str(mb05_copy), config={"width": 0.5}))
    try:
        assert "mb05-copy-test" in ddfa.list_models()
        image = example_images["emma.jpg"]
        custom = ddfa.FaceAligner(model="mb05-copy-test", assets=assets_dir, precision="f32")
        assert custom.regressor.name == "mb05-copy-test"
        np.testing.assert_allclose(_landmarks(custom, image), _landmarks(default_aligner, image), atol=1e-3)

        out = tmp_path / "cli"
        code = main(["align", str(image), "--model", "mb05-copy-test", "--assets", str(assets_dir),
                     "--output", str(out), "--outputs", "none", "--quiet", "--precision", "f32"])
        assert code == 0, capsys.readouterr()
        result = json.loads((out / "emma.jpg.json").read_text())
        assert result["model"] == "mb05-copy-test" and result["schema_version"]
        got = np.array([f["landmarks_68"] for f in result["faces"]])
        np.testing.assert_allclose(got, _landmarks(default_aligner, image), atol=1e-3)
    finally:
        MODELS.pop("mb05-copy-test", None)


def test_register_architecture_with_its_own_checkpoint_adapter(tmp_path, store):
    """A new backbone brings its own checkpoint layout; create_model reads it by path."""

    class TinyNet(torch.nn.Module):
        def __init__(self, hidden: int = 4, num_outputs: int = 62):
            super().__init__()
            self.body = torch.nn.Linear(3, hidden)
            self.head = torch.nn.Linear(hidden, num_outputs)

        def forward(self, x):
            return self.head(self.body(x.mean(dim=(2, 3))))

    def read_tiny(obj, source):
        from ddfa.nets.checkpoint import RegressorCheckpoint

        state = {k.replace("tiny/", ""): v for k, v in obj["weights"].items()}
        return RegressorCheckpoint(state, "tiny", {"whitening": obj["ddfa"]["whitening"]})

    register_architecture("tiny-test", read_checkpoint=read_tiny,
                          config_from_state=lambda state: {"hidden": state["body.weight"].shape[0]})(TinyNet)
    try:
        net = TinyNet(hidden=6)
        white = ddfa.create_model("mb05", assets=store, backend="torch").whitening
        meta = make_ddfa_checkpoint(net, arch="tiny-test", width=1.0, whitening=white)["ddfa"]
        meta.pop("config")
        path = tmp_path / "tiny.pth"
        torch.save({"weights": {f"tiny/{k}": v for k, v in net.state_dict().items()}, "ddfa": meta}, path)
        regressor = ddfa.create_model(path, assets=store, backend="torch")
        assert isinstance(regressor.net, TinyNet) and regressor.net.body.out_features == 6
        crops = np.random.default_rng(0).integers(0, 255, (2, 120, 120, 3), dtype=np.uint8)
        assert regressor(crops).shape == (2, 62)
    finally:
        ARCHITECTURES.pop("tiny-test", None)


def test_wrong_checkpoints_are_refused_with_the_file_named(tmp_path, mb05_copy, store):
    ckpt = torch.load(mb05_copy, weights_only=True)
    ten = dict(ckpt)
    ten["state_dict"] = dict(ckpt["state_dict"])
    ten["state_dict"]["fc.weight"] = ten["state_dict"]["fc.weight"][:10]
    ten["state_dict"]["fc.bias"] = ten["state_dict"]["fc.bias"][:10]
    torch.save(ten, tmp_path / "ten.pth")
    with pytest.raises(AssetError, match="ten.pth: weights do not fit"):
        ddfa.create_model(tmp_path / "ten.pth", assets=store)
    bad = dict(ckpt)
    bad["ddfa"] = {**ckpt["ddfa"], "config": {"width": "abc"}}
    torch.save(bad, tmp_path / "abc.pth")
    with pytest.raises(AssetError, match="abc.pth"):
        ddfa.create_model(tmp_path / "abc.pth", assets=store)
    with pytest.raises(InputError, match="unknown model"):
        ddfa.create_model("no-such-model", assets=store)


# ---------------------------------------------------------------------- detectors
@dataclass(frozen=True, kw_only=True)
class _FixedOptions:
    shrink: float = 0.0
    score: float = 0.9


def test_register_detector_with_options_through_facade_and_cli(tmp_path, assets_dir, example_images, capsys):
    seen = []

    @ddfa.register_detector("fixed-test", options=_FixedOptions, description="one fixed box")
    def _make(base_options, options):
        seen.append((base_options, options))

        def detect(image):
            h, w = image.shape[:2]
            s = options.shrink * min(h, w)
            return Detections.from_array([[w * 0.3 + s, h * 0.2 + s, w * 0.7 - s, h * 0.8 - s, options.score]])

        return type("Fixed", (), {"detect": staticmethod(detect), "name": "fixed-test"})()

    try:
        assert "fixed-test" in ddfa.list_detectors()
        aligner = ddfa.FaceAligner(detector="fixed-test", assets=assets_dir, threads=1,
                                   detector_options={"score": 0.7})
        faces = aligner(example_images["emma.jpg"])
        assert len(faces) == 1 and faces[0].score == pytest.approx(0.7)
        base, opts = seen[-1]
        assert base.threads == 1 and base.assets.root == assets_dir and opts == _FixedOptions(score=0.7)
        with pytest.raises(InputError, match="unknown option"):
            ddfa.FaceAligner(detector="fixed-test", assets=assets_dir, detector_options={"scroe": 0.7})

        out = tmp_path / "cli"
        code = main(["align", str(example_images["emma.jpg"]), "--detector", "fixed-test", "--assets",
                     str(assets_dir), "--detector-option", "score=0.6", "--detector-option", "shrink=0.05",
                     "--output", str(out), "--outputs", "none", "--quiet"])
        assert code == 0, capsys.readouterr()
        assert seen[-1][1] == _FixedOptions(score=0.6, shrink=0.05)
        result = json.loads((out / "emma.jpg.json").read_text())
        assert [f["score"] for f in result["faces"]] == [pytest.approx(0.6)]

        code = main(["align", str(example_images["emma.jpg"]), "--detector", "fixed-test", "--assets",
                     str(assets_dir), "--detector-option", "score=high", "--output", str(out), "--quiet"])
        assert code == 1
        assert "expected float" in capsys.readouterr().err
    finally:
        DETECTORS.pop("fixed-test", None)


def test_faceboxes_options_by_name(assets_dir, example_images):
    strict = ddfa.FaceAligner(assets=assets_dir, detector="faceboxes", detector_options={"score_threshold": 0.999})
    loose = ddfa.FaceAligner(assets=assets_dir, detector="faceboxes")
    image = example_images["trump_hillary.jpg"]
    assert len(strict.detect(image)) < len(loose.detect(image))


# ---------------------------------------------------------------------- runtime context
def test_base_options_travel_as_one_value(assets_dir):
    base = ddfa.BaseOptions(assets=str(assets_dir), backend="torch", threads=1)
    assert isinstance(base.assets, ddfa.AssetStore)
    aligner = ddfa.FaceAligner(base_options=base, detector="faceboxes")
    assert aligner.base_options is base and aligner.regressor.backend == "torch"
    assert aligner.detector.backend == "torch"
    assert ddfa.FaceAligner(base_options=base).detector.backend == "onnxruntime"  # YuNet: onnxruntime only
    with pytest.raises(InputError, match="unknown device"):
        ddfa.BaseOptions(device="banana")
    with pytest.raises(InputError, match="backend"):
        ddfa.BaseOptions(backend="tensorrt")
    with pytest.raises(InputError, match="threads"):
        ddfa.BaseOptions(threads=0)
    if not torch.cuda.is_available():
        with pytest.raises(InputError, match="no CUDA"):
            ddfa.create_model("mb05", assets=assets_dir, device="cuda")


def test_threads_default_from_the_environment(assets_dir, monkeypatch, tmp_path, capsys):
    """$DDFA_THREADS is the default of BaseOptions.threads (explicit values win), in the library
    and the CLI; a bad value is a one-line error naming the variable."""
    from ddfa.cli.main import main

    monkeypatch.setenv("DDFA_THREADS", "1")
    assert ddfa.BaseOptions(assets=assets_dir).threads == 1
    assert ddfa.BaseOptions(assets=assets_dir, threads=2).threads == 2
    assert ddfa.create_model("mb05", assets=assets_dir).base_options.threads == 1
    monkeypatch.delenv("DDFA_THREADS")
    assert ddfa.BaseOptions(assets=assets_dir).threads is None
    monkeypatch.setenv("DDFA_THREADS", "two")
    with pytest.raises(InputError, match="DDFA_THREADS"):
        ddfa.BaseOptions(assets=assets_dir)
    photo = tmp_path / "photo.jpg"
    photo.write_bytes(b"")
    assert main(["align", str(photo), "--assets", str(assets_dir), "--output", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    assert "DDFA_THREADS" in err and len(err.strip().splitlines()) == 1


def test_typed_align_options(aligner, example_images):
    with pytest.raises(InputError, match="max_faces"):
        aligner(example_images["emma.jpg"], max_faces=1.5)
    with pytest.raises(InputError, match="max_faces"):
        ddfa.AlignOptions(max_faces=-1)
    with pytest.raises(InputError, match="crop_policy"):
        ddfa.AlignOptions(crop_policy="nose")
    with pytest.raises(TypeError):
        ddfa.AlignOptions("box")  # keyword-only


def test_rgb_channels_switch(aligner, example_images):
    import cv2

    bgr = cv2.imread(str(example_images["emma.jpg"]))
    rgb = np.ascontiguousarray(bgr[:, :, ::-1])
    expected = _landmarks(aligner, bgr)
    got = np.stack([f.landmarks for f in aligner(rgb, channels="rgb")])
    np.testing.assert_allclose(got, expected, atol=1e-4)
    wrong = aligner(rgb)  # RGB taken as BGR: not the same faces
    assert len(wrong) != len(expected) or not np.allclose(np.stack([f.landmarks for f in wrong]), expected, atol=0.5)
    with pytest.raises(InputError, match="channels"):
        aligner(bgr, channels="hsv")


def test_landmark_box_beside_detector_box(aligner, example_images):
    face = aligner(example_images["emma.jpg"])[0]
    lm = face.landmarks
    np.testing.assert_allclose(face.landmark_box, [lm[:, 0].min(), lm[:, 1].min(), lm[:, 0].max(), lm[:, 1].max()])
    assert not np.allclose(face.landmark_box, face.box)


def test_detections_carry_their_detectors_roi_rule(assets_dir, example_images):
    """Detections found by YuNet crop the same in an aligner without a detector (the split plan
    of ``ddfa batch``: detection in one process, regression in another)."""
    with_detector = ddfa.FaceAligner(detector="yunet", assets=assets_dir)
    without = ddfa.FaceAligner(detector=None, assets=assets_dir)
    image = ddfa.read_image(example_images["emma.jpg"])
    found = with_detector.detect(image)
    assert found.roi_mapping == with_detector.roi_mapping != without.roi_mapping
    expected = np.stack([f.landmarks for f in with_detector(image)])
    got = np.stack([f.landmarks for f in without(image, boxes=found)])
    np.testing.assert_allclose(got, expected, atol=1e-3)
