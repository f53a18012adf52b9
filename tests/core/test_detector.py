"""FaceBoxes: anchors, decoding, NMS and detections against the original implementation."""

from __future__ import annotations

import itertools
import json
import math

import numpy as np
import pytest
from engines import ENGINES, engine_params, engine_tolerance

import ddfa
from ddfa.detect import Detections, create_detector
from ddfa.detect.faceboxes import FaceBoxesDetector
from ddfa.detect.faceboxes.boxes import decode_boxes, nms, prior_boxes
from ddfa.errors import InputError
from ddfa.io.image import read_image


def _naive_priors(height, width):
    """Anchors written out as nested loops, straight from the FaceBoxes paper's densification."""
    out = []
    for step, sizes in zip((32, 64, 128), ((32, 64, 128), (256,), (512,))):
        for i, j in itertools.product(range(math.ceil(height / step)), range(math.ceil(width / step))):
            for size in sizes:
                offsets = {32: [0, 0.25, 0.5, 0.75], 64: [0, 0.5]}.get(size, [0.5])
                for dy, dx in itertools.product(offsets, offsets):
                    out.append([(j + dx) * step / width, (i + dy) * step / height, size / width, size / height])
    return np.array(out, np.float32)


@pytest.mark.parametrize("shape", [(551, 413), (524, 1080), (37, 70)])
def test_priors_equal_naive_enumeration(shape):
    np.testing.assert_array_equal(prior_boxes(*shape), _naive_priors(*shape))


def test_prior_counts_match_reference(golden_dir):
    meta = json.loads((golden_dir / "pipeline_mb05.json").read_text())
    for image in meta["images"]:
        h, w, _ = image["faceboxes_input_shape_hwc"]
        assert len(prior_boxes(h, w)) == image["n_priors"], image["name"]


def test_decode_and_nms_hand_computed():
    priors = np.array([[0.5, 0.5, 0.2, 0.4]], np.float32)
    loc = np.array([[1.0, -1.0, 0.0, np.log(2) / 0.2]], np.float32)
    # centre moves by 0.1 * 0.2 = 0.02 in x and -0.1 * 0.4 in y; height doubles to 0.8
    np.testing.assert_allclose(decode_boxes(loc, priors), [[0.42, 0.06, 0.62, 0.86]], atol=1e-6)
    boxes = np.array([[0, 0, 9, 9], [1, 1, 10, 10], [20, 20, 29, 29], [0, 0, 9, 4]], np.float32)
    scores = np.array([0.9, 0.8, 0.7, 0.95], np.float32)
    # pixel-inclusive areas: 100, 100, 100, 50. Overlaps with box 3 (the best): box 0 50/100 = 0.5,
    # box 1 36/114 = 0.316; box 1 with box 0: 81/119 = 0.68; box 2 overlaps nothing.
    np.testing.assert_array_equal(nms(boxes, scores, 0.3), [3, 2])
    np.testing.assert_array_equal(nms(boxes, scores, 0.4), [3, 1, 2])
    np.testing.assert_array_equal(nms(boxes, scores, 0.7), [3, 0, 1, 2])
    assert nms(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), 0.3).size == 0


def _box_limit(ref_boxes, tol):
    side = (ref_boxes[:, 2] - ref_boxes[:, 0] + ref_boxes[:, 3] - ref_boxes[:, 1])[:, None] / 2
    return tol.box_px + tol.box_rel * side


@pytest.mark.parametrize("engine", engine_params())
def test_detections_equal_reference(engine, assets_dir, pipeline_golden, example_images):
    tol = engine_tolerance(engine)
    detector = FaceBoxesDetector(base_options=ddfa.BaseOptions(assets=assets_dir, **ENGINES[engine]))
    assert (detector.backend, detector.precision) == (ENGINES[engine]["backend"], ENGINES[engine]["precision"])
    for index, name in enumerate(pipeline_golden["image_names"]):
        found = detector.detect(read_image(example_images[name]))
        mine = pipeline_golden["face_image_idx"] == index
        assert len(found) == mine.sum(), name
        ref = pipeline_golden["fb_box"][mine]
        assert np.all(np.abs(found.boxes - ref) <= _box_limit(ref, tol)), name
        np.testing.assert_allclose(found.scores, pipeline_golden["fb_score"][mine], atol=tol.score)


@pytest.mark.parametrize("engine", engine_params("onnxruntime", "openvino-f32"))
def test_all_candidates_after_nms_equal_reference(engine, assets_dir, pipeline_golden, example_images):
    """Below the final 0.5 score threshold too (the reference's debug output); float32 engines
    (in bfloat16 the weakest candidates near the 0.05 threshold come and go)."""
    detector = FaceBoxesDetector(base_options=ddfa.BaseOptions(assets=assets_dir, **ENGINES[engine]),
                                 score_threshold=0.0)
    for index, name in enumerate(pipeline_golden["image_names"]):
        found = detector.detect(read_image(example_images[name]))
        ref = pipeline_golden["dets_nms"][pipeline_golden["dets_nms_image_idx"] == index]
        ref = ref[ref[:, 4] > 0.0]
        assert len(found) == len(ref), name
        np.testing.assert_allclose(found.boxes, ref[:, :4], atol=1e-3)
        np.testing.assert_allclose(found.scores, ref[:, 4], atol=1e-5)


def test_detector_plugins():
    boxes = np.array([[10, 10, 50, 60, 0.9]], np.float32)
    detector = create_detector(lambda image: boxes)
    found = detector.detect(np.zeros((100, 100, 3), np.uint8))
    np.testing.assert_array_equal(found.boxes, boxes[:, :4])
    assert create_detector(None) is None
    with pytest.raises(InputError, match="unknown detector"):
        create_detector("no-such-detector")
    with pytest.raises(InputError, match="x2 > x1"):
        Detections.from_array([[10, 10, 5, 60]])
    with pytest.raises(InputError, match="shape"):
        Detections.from_array(np.zeros((2, 3)))

    @ddfa.register_detector("fixed-box-test")
    def _factory(base_options, options):
        assert options is None
        return create_detector(lambda image: boxes)

    assert len(create_detector("fixed-box-test").detect(np.zeros((5, 5, 3), np.uint8))) == 1
    with pytest.raises(InputError, match="takes no options"):
        create_detector("fixed-box-test", score_threshold=0.5)
