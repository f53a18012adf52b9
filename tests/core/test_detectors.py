"""YuNet (the default) and CenterFace: decoding, the 5 points, the scale policy on large and
crowded photos built from the development photos, the fitted box-to-roi mappings, and the
detection benchmark through the CLI."""

from __future__ import annotations

import functools
import json
import math

import cv2
import numpy as np
import pytest
from engines import ENGINES, engine_params

import ddfa
from ddfa.boxes import FACEBOXES_ROI, RoiMapping, box_iou, nms
from ddfa.detect import DEFAULT_DETECTOR, KEYPOINT_NAMES, Detections, single_shot
from ddfa.detect.centerface import CENTERFACE_ROI, CenterFaceDetector
from ddfa.detect.scale import ScaleOptions, pass_images, plan_passes
from ddfa.detect.yunet import YUNET_ROI, YuNetDetector, YuNetOptions
from ddfa.errors import InputError
from ddfa.eval.detection import faces_found, fit_roi_mapping, load_full_photos, matched_detections, paste_faces
from ddfa.pipeline.crop import roi_from_landmarks


@pytest.fixture(scope="module")
def yunet(assets_dir):
    return YuNetDetector(assets_dir)


@pytest.fixture(scope="module")
def dev_photos(data_dir):
    """50 development photos, evenly spaced over the 1700 (all yaw bins)."""
    return load_full_photos(data_dir / "aflw2000-3d", subset=50)


# ---------------------------------------------------------------------- decoding and points
@pytest.mark.parametrize("engine", engine_params("onnxruntime", "openvino-f32", "openvino-bf16"))
def test_yunet_decoding_equals_opencv(engine, assets_dir, example_images):
    """ddfa's numpy decoding of the network's outputs equals cv2.FaceDetectorYN's C++ decoding, on
    every engine: to 0.05 px in float32; in bfloat16 (measured: boxes and points within 1% of
    the face's width, scores within 0.006) to 2% and 0.015."""
    image = cv2.resize(ddfa.read_image(example_images["emma.jpg"]), (640, 311))
    zoo = assets_dir / "opencv_zoo/models/face_detection_yunet/face_detection_yunet_2023mar.onnx"
    reference = cv2.FaceDetectorYN.create(str(zoo), "", (640, 311), 0.3, 0.3, 5000)
    _, faces = reference.detect(image)
    base = ddfa.BaseOptions(assets=assets_dir, **ENGINES[engine])
    detector = YuNetDetector(base_options=base, options=YuNetOptions(min_face=None))
    assert (detector.backend, detector.precision) == (ENGINES[engine]["backend"], ENGINES[engine]["precision"])
    ours = detector.detect(image)
    assert faces is not None and len(ours) == len(faces) >= 3
    order = np.argsort(-faces[:, 14])
    ref_boxes = faces[order, :4].copy()
    ref_boxes[:, 2:] += ref_boxes[:, :2]  # (x, y, w, h) -> corners
    bf16 = ENGINES[engine]["precision"] == "bf16"
    width = (ref_boxes[:, 2] - ref_boxes[:, 0])[:, None]
    tol = 0.02 * width if bf16 else 0.05
    assert np.all(np.abs(ours.boxes - ref_boxes) <= tol)
    np.testing.assert_allclose(ours.scores, faces[order, 14], atol=0.015 if bf16 else 1e-4)
    points = np.abs(ours.keypoints - faces[order, 4:14].reshape(-1, 5, 2))
    assert np.all(points <= (tol[:, :, None] if bf16 else tol))


@pytest.mark.parametrize("name", ["yunet", "centerface"])
def test_five_points_are_the_documented_landmarks(name, assets_dir, dev_photos):
    """Each point lies on its ground-truth counterpart (iBUG 68: eye centres, nose tip 30, mouth
    corners 48 / 54) on near-frontal development photos, in :data:`KEYPOINT_NAMES` order."""
    detector = ddfa.create_detector(name, base_options=ddfa.BaseOptions(assets=assets_dir))
    frontal = [i for i in range(len(dev_photos.names)) if abs(dev_photos.yaw[i]) < 30][:6]
    errors = []
    for i in frontal:
        found = detector.detect(ddfa.read_image(dev_photos.folder / dev_photos.names[i]))
        gt = dev_photos.landmarks[i]
        reference = np.stack([gt[36:42].mean(0), gt[42:48].mean(0), gt[30], gt[48], gt[54]])
        size = math.sqrt(np.prod(gt.max(0) - gt.min(0)))
        centres = (found.boxes[:, :2] + found.boxes[:, 2:]) / 2
        k = int(np.argmin(np.linalg.norm(centres - reference.mean(0), axis=1)))
        assert found.keypoints.shape == (len(found), 5, 2) and found.keypoints.dtype == np.float32
        errors.append(np.linalg.norm(found.keypoints[k] - reference, axis=1) / size)
    errors = np.array(errors)
    assert KEYPOINT_NAMES[0] == "right_eye" and len(KEYPOINT_NAMES) == 5
    # measured (YuNet): 4-5% of the face size per point; swapping left and right would give ~30%
    assert np.median(errors, axis=0).max() < 0.09, np.median(errors, axis=0)


def test_keypoints_reach_face_and_json(default_aligner, example_images):
    faces = default_aligner(example_images["trump_hillary.jpg"])
    assert len(faces) == 2 and default_aligner.detector.name == DEFAULT_DETECTOR == "yunet"
    for face in faces:
        assert face.keypoints5.shape == (5, 2)
        x1, y1, x2, y2 = face.box
        assert np.all((face.keypoints5 >= [x1, y1]) & (face.keypoints5 <= [x2, y2]))
        assert np.shape(face.to_dict()["keypoints_5"]) == (5, 2)
    given = default_aligner(example_images["trump_hillary.jpg"], boxes=[f.box for f in faces])
    assert given[0].keypoints5 is None and "keypoints_5" not in given[0].to_dict()
    # detections of the aligner's own detector as boxes: the same faces as detection
    again = default_aligner(example_images["trump_hillary.jpg"], boxes=default_aligner.detect(
        example_images["trump_hillary.jpg"]))
    np.testing.assert_allclose([f.landmarks for f in again], [f.landmarks for f in faces], atol=1e-4)


# ---------------------------------------------------------------------- scale policy
def test_pass_plan_covers_every_point_once():
    opts = ScaleOptions()
    plans = {hw: plan_passes(*hw, opts, stride=32, min_input_face=20)
             for hw in [(450, 450), (720, 1280), (1080, 1920), (6000, 6000), (300, 5000)]}
    assert [len(p) for p in plans.values()] == [1, 1, 2, 2, 2]
    assert plans[(450, 450)][0].scale == 1.0 and plans[(450, 450)][0].input_size == (480, 480)
    assert plans[(720, 1280)][0].size == (360, 640) and plans[(720, 1280)][0].input_size == (384, 640)
    coarse, fine = plans[(6000, 6000)]
    assert coarse.size == (640, 640) and math.isclose(fine.scale, 0.5) and len(fine.tiles) == 36
    rng = np.random.default_rng(0)
    for plan in plans.values():
        for spec in plan[1:]:
            h, w = spec.size
            assert all(0 <= t.x0 < t.x1 <= w and 0 <= t.y0 < t.y1 <= h for t in spec.tiles)
            points = rng.uniform([0, 0], [w, h], (2000, 2))
            inside = np.array([[t.core[0] <= x < t.core[2] and t.core[1] <= y < t.core[3] for t in spec.tiles]
                               for x, y in points])
            assert np.all(inside.sum(axis=1) == 1)  # every point in exactly one core
            # a face no larger than the overlap, centred in a core, lies wholly in that tile
            half = spec.max_face / 2
            for (x, y), row in zip(points[:300], inside[:300]):
                t = spec.tiles[int(np.argmax(row))]
                assert t.x0 <= max(x - half, 0) and min(x + half, w) <= t.x1
                assert t.y0 <= max(y - half, 0) and min(y + half, h) <= t.y1
    with pytest.raises(InputError, match="det_size"):
        YuNetOptions(det_size=16).check_scale(32)
    with pytest.raises(InputError, match="score_threshold"):
        YuNetOptions(score_threshold=1.5)


def test_64px_faces_in_a_720p_frame(yunet, dev_photos):
    """50 development faces of 64 px (sqrt(w·h) of the landmark box) in a 1280x720 frame."""
    canvas = paste_faces((720, 1280), dev_photos, [(c * 128, 40 + r * 128, 128, 64.0) for r in range(5)
                                                   for c in range(10)])
    found = faces_found(canvas, yunet.detect(canvas.image).boxes)
    assert found.mean() >= 0.95, found.mean()  # measured 1.00 (FaceBoxes on the same frame: 0.88)


def test_small_and_huge_faces_in_a_6000px_photo(yunet, dev_photos):
    """30 faces of 350 px, one of 1500 px and 40 of 40 px in one 6000x6000 photo."""
    cells = [(c * 700, r * 700, 700, 350.0) for r in range(5) for c in range(6)]
    cells.append((4200, 0, 1800, 1500.0))
    cells += [(c * 200 + 60, 3700 + r * 200, 80, 40.0) for r in range(2) for c in range(20)]
    canvas = paste_faces((6000, 6000), dev_photos, cells)
    detections = yunet.detect(canvas.image)
    found = faces_found(canvas, detections.boxes)
    assert found[:30].sum() >= 28, found[:30].sum()  # measured 30 (FaceBoxes: 0)
    assert found[30]  # the 1500 px face
    assert found[31:].mean() >= 0.8, found[31:].mean()  # measured 0.93
    assert len(detections) <= len(cells) + 5  # tiles add no duplicates or cut faces


def test_passes_made_from_finer_passes_find_the_same_faces(yunet, dev_photos, monkeypatch):
    """A 12-MP photo's coarse pass is averaged from its finer pass, not from the photo (OpenCV's
    area resize is ~3x slower for fractional factors): nearly the same pixels, the same faces."""
    cells = [(c * 500, r * 500, 500, 120.0) for r in range(6) for c in range(8)]  # found in either pass
    cells += [(c * 1000 + 40, 3024 - 420, 400, 360.0) for c in range(4)]  # (under the 40 px photo floor)
    canvas = paste_faces((3024, 4032), dev_photos, cells)
    passes = plan_passes(3024, 4032, yunet.options, stride=yunet.stride, min_input_face=yunet.min_input_face)
    assert [p.size for p in passes] == [(480, 640), (1512, 2016)]
    made, direct = pass_images(canvas.image, passes), pass_images(canvas.image, passes, from_finer=False)
    np.testing.assert_array_equal(made[1], cv2.resize(canvas.image, (2016, 1512), interpolation=cv2.INTER_AREA))
    assert made[0].shape == direct[0].shape == (480, 640, 3)
    assert np.abs(made[0].astype(np.int16) - direct[0]).mean() < 0.5  # measured 0.03 gray levels
    found = yunet.detect(canvas.image)
    monkeypatch.setattr(single_shot, "pass_images", functools.partial(pass_images, from_finer=False))
    before = yunet.detect(canvas.image)
    np.testing.assert_array_equal(faces_found(canvas, found.boxes), faces_found(canvas, before.boxes))
    assert faces_found(canvas, found.boxes).mean() > 0.9
    for a, b in ((found, before), (before, found)):  # every confident box has its twin
        overlap = box_iou(a.boxes[a.scores > 0.6], b.boxes).max(axis=1)
        assert overlap.min() > 0.9 and overlap.mean() > 0.99, overlap  # measured 0.98, 0.999


def test_no_face_no_detection(yunet):
    rng = np.random.default_rng(0)
    assert len(yunet.detect(np.full((480, 640, 3), 127, np.uint8))) == 0
    assert len(yunet.detect(rng.integers(0, 255, (300, 200, 3), dtype=np.uint8))) == 0
    assert len(yunet.detect(np.zeros((1, 1, 3), np.uint8))) == 0
    empty = yunet.detect(np.zeros((5, 5, 3), np.uint8))
    assert empty.keypoints.shape == (0, 5, 2) and empty.top(3).boxes.shape == (0, 4)


def test_shared_nms_continuous_and_pixel_inclusive():
    boxes = np.array([[0, 0, 10, 10], [0, 0, 10, 5], [20, 20, 30, 30]], np.float32)
    scores = np.array([0.9, 0.8, 0.7], np.float32)
    # continuous areas: IoU of the first two = 50/100 = 0.5; pixel-inclusive: 66/121 = 0.545
    np.testing.assert_array_equal(nms(boxes, scores, 0.52), [0, 1, 2])
    np.testing.assert_array_equal(nms(boxes, scores, 0.52, pixel_inclusive=True), [0, 2])


# ---------------------------------------------------------------------- box -> roi mappings
def test_fitted_roi_mappings(assets_dir, yunet, dev_photos):
    """YuNet's stored mapping (fitted on all 1700 development photos) puts its rois where the
    ground-truth landmark crop is, far better than 3DDFA_V2's FaceBoxes rule on the same
    boxes; refitting on 25 photos gives nearly the same constants."""
    photos = load_full_photos(dev_photos.folder.parent, names=dev_photos.names[::2])
    matched, boxes, points = matched_detections(yunet, photos)
    assert matched.mean() > 0.95
    target = roi_from_landmarks(photos.landmarks[matched].astype(np.float32))
    boxes, points = boxes[matched], points[matched]

    def mean_iou(mapping):
        return float(np.mean(np.diag(box_iou(mapping(boxes, points), target))))

    assert mean_iou(YUNET_ROI) > 0.84 > 0.7 > mean_iou(FACEBOXES_ROI)  # measured 0.87 and 0.65
    refit = fit_roi_mapping(boxes, target)
    assert abs(refit.scale - YUNET_ROI.scale) < 0.04 and abs(refit.shift_y - YUNET_ROI.shift_y) < 0.03
    assert abs(refit.shift_x - YUNET_ROI.shift_x) < 0.03
    # the mapping is part of each detector; FaceBoxes keeps 3DDFA_V2's exact rule
    assert ddfa.FaceAligner(assets=assets_dir, detector="faceboxes").roi_mapping is FACEBOXES_ROI
    assert CenterFaceDetector.roi_mapping is CENTERFACE_ROI and YuNetDetector.roi_mapping is YUNET_ROI
    assert FACEBOXES_ROI == RoiMapping(1.58, 0.0, 0.14, truncate=True)
    # the blend with the points' centre: weight 1 puts the centre on the points' box centre
    rois = RoiMapping(1.0, keypoint_weight=1.0)(np.array([[0, 0, 10, 10]]), np.array([[[4, 4], [6, 4], [5, 5],
                                                                                       [4, 6], [6, 6]]]))
    np.testing.assert_allclose(rois, [[0, 0, 10, 10]])


# ---------------------------------------------------------------------- CenterFace
def test_centerface_agrees_with_yunet(assets_dir, yunet, dev_photos):
    centerface = CenterFaceDetector(assets_dir)
    for name in dev_photos.names[:4]:
        image = ddfa.read_image(dev_photos.folder / name)
        a, b = centerface.detect(image), yunet.detect(image)
        assert len(a) >= 1 and isinstance(a, Detections)
        assert box_iou(a.boxes[:1], b.boxes).max() > 0.5, name


# ---------------------------------------------------------------------- benchmark and CLI
def test_detection_benchmark_cli(tmp_path, assets_dir, data_dir, capsys):
    from ddfa.cli.main import main

    code = main(["benchmark", "detection", "--assets", str(assets_dir), "--data", str(data_dir / "aflw2000-3d"),
                 "--subset", "6", "--compare", "faceboxes", "--output", str(tmp_path), "--quiet"])
    assert code == 0
    out = capsys.readouterr().out
    assert "yunet (640)" in out and "faceboxes" in out and "| detector |" in out
    result = json.loads((tmp_path / "detection_yunet_640_subset6.json").read_text())
    r = result["results"]
    assert result["benchmark"] == "detection" and result["protocol"]["num_photos"] == 6
    assert r["detection_rate"]["all"] == 1.0 and 1 <= r["boxes_per_photo"] < 2
    assert 1.0 < r["nme"]["box"]["mean_all"] < 6.0 and 1.0 < r["nme"]["landmark"]["mean_all"] < 6.0
    assert result["model"]["roi_mapping"]["scale"] == YUNET_ROI.scale
    assert len(list(tmp_path.glob("*_ced.png"))) == 1
    with pytest.raises(SystemExit):
        main(["benchmark", "detection", "--det-size", "x"])
    assert main(["align", "x.jpg", "--detector", "faceboxes", "--det-size", "960", "--assets", str(assets_dir),
                 "--output", str(tmp_path)]) == 1
    assert "no working-resolution option" in capsys.readouterr().err


def test_detection_benchmark_reports_refined_beside_plain(tmp_path, assets_dir, data_dir, capsys):
    """``--refine flip``: the plain box and landmark crops are the same figures as without it, the
    refined pass is scored beside them on the same faces, with its cost per face."""
    from ddfa.cli.main import main

    args = ["benchmark", "detection", "--assets", str(assets_dir), "--data", str(data_dir / "aflw2000-3d"),
            "--subset", "4", "--output", str(tmp_path), "--quiet", "--no-plot"]
    assert main(args) == 0 and main([*args, "--refine", "flip"]) == 0
    out = capsys.readouterr().out
    assert "ref mean" in out and "ms/face ref" in out
    plain = json.loads((tmp_path / "detection_yunet_640_subset4.json").read_text())
    refined = json.loads((tmp_path / "detection_yunet_640_subset4_refine-flip.json").read_text())
    assert refined["model"]["refine"] == "flip" and "refined" not in plain["results"]["nme"]
    for policy in ("box", "landmark"):
        assert refined["extra"]["nme_pct"][policy] == plain["extra"]["nme_pct"][policy]
    errors = np.array(refined["extra"]["nme_pct"]["refined"], float)
    assert np.all(np.isfinite(errors)) and np.all(errors < 10)
    # a different estimate of the same faces: close to the plain landmark crop, not equal
    assert 0 < np.abs(errors - np.array(plain["extra"]["nme_pct"]["landmark"], float)).max() < 2
    # the cost is reported beside the plain policies' (not compared here: timings of 4 faces on a
    # busy machine can come out in any order; benchmarks/ compare speeds)
    ms = refined["results"]["ms_per_face"]
    assert ms["refined_median"] > 0 and ms["landmark_median"] > 0
