"""``ddfa align --refine``: refined faces, their uncertainty, confidence and landmark visibility in
the JSON, with the default detector (YuNet), in throughput mode, and on every engine."""

from __future__ import annotations

import json

import numpy as np
import pytest

import ddfa
from ddfa.cli.main import main
from ddfa.io.results import SCHEMA_VERSION
from ddfa.nets import engines

needs_openvino = pytest.mark.skipif(not engines.openvino_available(), reason="OpenVINO is not installed")


def test_align_refine_writes_uncertainty_confidence_and_visibility(tmp_path, assets_dir, default_aligner,
                                                                    example_images):
    photo = example_images["image00427.jpg"]  # an AFLW2000-3D photo, head turned
    code = main(["align", str(photo), "--output", str(tmp_path), "--assets", str(assets_dir), "--quiet",
                 "--precision", "f32", "--crop-policy", "landmarks", "--refine", "flip", "--outputs", "none"])
    assert code == 0
    record = json.loads((tmp_path / "image00427.jpg.json").read_text())
    assert record["schema_version"] == SCHEMA_VERSION
    face = record["faces"][0]
    assert 0 < face["uncertainty"] < 0.1 and 0 <= face["confidence"] <= 1
    assert len(face["landmarks_visible"]) == 68 and all(isinstance(v, bool) for v in face["landmarks_visible"])
    api = default_aligner(str(photo), crop_policy="landmarks", refine="flip")[0]  # the CLI's detector: YuNet
    np.testing.assert_allclose(face["landmarks_68"], api.landmarks, atol=1e-3)
    assert face["landmarks_visible"] == api.landmarks_visible.tolist()
    assert face["confidence"] == pytest.approx(api.confidence, abs=1e-9)
    # without refinement: no uncertainty, no confidence, visibility still there
    main(["align", str(photo), "--output", str(tmp_path / "plain"), "--assets", str(assets_dir), "--quiet",
          "--outputs", "none"])
    plain = json.loads((tmp_path / "plain" / "image00427.jpg.json").read_text())["faces"][0]
    assert "uncertainty" not in plain and "confidence" not in plain and len(plain["landmarks_visible"]) == 68


def test_refine_in_throughput_mode_equals_one_by_one(tmp_path, assets_dir, example_images):
    """Several photos go through the pipelined (three-thread) path; refined results equal the
    sequential run's, and a re-run with another --refine is not skipped as done."""
    photos = [str(example_images[name]) for name in ("emma.jpg", "JianzhuGuo.jpg", "trump_hillary.jpg")]
    common = ["--assets", str(assets_dir), "--quiet", "--precision", "f32", "--outputs", "none", "--threads", "1"]
    assert main(["align", *photos, "--output", str(tmp_path / "fast"), "--refine", "flip", *common]) == 0
    assert main(["align", *photos, "--output", str(tmp_path / "slow"), "--refine", "flip", "--sequential",
                 *common]) == 0
    for name in ("emma.jpg", "JianzhuGuo.jpg", "trump_hillary.jpg"):
        fast = json.loads((tmp_path / "fast" / f"{name}.json").read_text())["faces"]
        slow = json.loads((tmp_path / "slow" / f"{name}.json").read_text())["faces"]
        assert len(fast) == len(slow) >= 1
        for a, b in zip(fast, slow):
            np.testing.assert_allclose(a["landmarks_68"], b["landmarks_68"], atol=1e-3)
            assert a["uncertainty"] == pytest.approx(b["uncertainty"], rel=1e-4)
            assert a["landmarks_visible"] == b["landmarks_visible"]
    assert main(["align", *photos, "--output", str(tmp_path / "fast"), *common]) == 0  # --refine none
    assert "uncertainty" not in json.loads((tmp_path / "fast" / "emma.jpg.json").read_text())["faces"][0]


@pytest.mark.parametrize("detector", ["yunet", "centerface", "faceboxes"])
def test_refine_with_every_detector(detector, assets_dir, example_images):
    aligner = ddfa.FaceAligner(assets=assets_dir, detector=detector, precision="f32")
    image = ddfa.read_image(example_images["emma.jpg"])
    plain = aligner(image, crop_policy="landmarks")
    refined = aligner(image, crop_policy="landmarks", refine="full")
    assert len(plain) == len(refined) >= 1
    size = np.sqrt(np.prod(np.ptp(plain[0].landmarks[:, :2], axis=0)))
    moved = np.linalg.norm(refined[0].landmarks[:, :2] - plain[0].landmarks[:, :2], axis=1).mean() / size
    assert moved < 0.02 and 0 < refined[0].uncertainty < 0.05 and refined[0].confidence > 0.5
    if detector != "faceboxes":
        assert refined[0].keypoints5 is not None  # the detector's points survive refinement


@needs_openvino
def test_refine_on_openvino_matches_onnxruntime(assets_dir, example_images):
    image = ddfa.read_image(example_images["emma.jpg"])
    faces = {engine: ddfa.FaceAligner(assets=assets_dir, backend=engine, precision="f32")(image, refine="full")[0]
             for engine in ("onnxruntime", "openvino")}
    a, b = faces["onnxruntime"], faces["openvino"]
    np.testing.assert_allclose(a.landmarks[:, :2], b.landmarks[:, :2], atol=0.05)
    assert a.uncertainty == pytest.approx(b.uncertainty, rel=1e-2)
