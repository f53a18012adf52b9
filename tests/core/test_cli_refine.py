"""``ddfa align --refine``: refined faces, their uncertainty, confidence and landmark visibility in
the JSON."""

from __future__ import annotations

import json

import numpy as np

from ddfa.cli.main import main


def test_align_refine_writes_uncertainty_confidence_and_visibility(tmp_path, assets_dir, aligner, example_images,
                                                                    capsys):
    photo = example_images["image00427.jpg"]  # an AFLW2000-3D photo, head turned
    code = main(["align", str(photo), "--output", str(tmp_path), "--assets", str(assets_dir), "--quiet",
                 "--crop-policy", "landmarks", "--refine", "flip", "--outputs", "none"])
    assert code == 0
    record = json.loads((tmp_path / "image00427.json").read_text())
    face = record["faces"][0]
    assert 0 < face["uncertainty"] < 0.1 and 0 <= face["confidence"] <= 1
    assert len(face["landmarks_visible"]) == 68 and all(isinstance(v, bool) for v in face["landmarks_visible"])
    api = aligner(str(photo), crop_policy="landmarks", refine="flip")[0]
    np.testing.assert_allclose(face["landmarks_68"], api.landmarks, atol=1e-3)
    assert face["landmarks_visible"] == api.landmarks_visible.tolist()
    assert face["confidence"] == api.confidence
    # without refinement: no uncertainty, no confidence, visibility still there
    main(["align", str(photo), "--output", str(tmp_path / "plain"), "--assets", str(assets_dir), "--quiet",
          "--outputs", "none"])
    plain = json.loads((tmp_path / "plain" / "image00427.json").read_text())["faces"][0]
    assert "uncertainty" not in plain and "confidence" not in plain and len(plain["landmarks_visible"]) == 68
