"""The tracker re-detects when a refined face's calibrated confidence is low."""

from __future__ import annotations

import numpy as np
import pytest

import ddfa
from ddfa.video import TrackerOptions, VideoTracker


@pytest.fixture(scope="module")
def flip_aligner(assets_dir):
    return ddfa.FaceAligner(assets=assets_dir, refine="flip")


def test_confidence_decides_when_to_detect(flip_aligner, obama_frames):
    frames = obama_frames[:6]
    # detector only on the first frame and for uncertain tracks; every refined face carries a confidence
    sure = list(VideoTracker(flip_aligner, TrackerOptions(detect_every=0, min_confidence=0.0),
                             smoothing="none").track(frames))
    assert sure[0].detected and not any(r.detected for r in sure[1:])
    confidences = [f.confidence for r in sure for f in r.faces]
    assert len(confidences) == 6 and all(c is not None and c > 0.5 for c in confidences)
    # a confidence below the threshold makes the track uncertain: the detector runs on every frame
    doubt = list(VideoTracker(flip_aligner, TrackerOptions(detect_every=0, min_confidence=1.0),
                              smoothing="none").track(frames))
    assert all(r.detected for r in doubt)
    assert [r.faces[0].track_id for r in doubt] == [1] * 6  # re-detection confirms the same track
    with pytest.raises(ddfa.InputError, match="min_confidence"):
        TrackerOptions(min_confidence=1.5)


def test_confidence_is_high_on_a_face_and_low_off_it(flip_aligner, obama_frames):
    frame = obama_frames[0]
    face = flip_aligner(frame, crop_policy="landmarks")[0]
    height, width = frame.shape[:2]
    side = face.roi_box[2] - face.roi_box[0]
    corner = np.array([[0.0, height - side, side, height]])  # the same size, off the face
    off = flip_aligner.align_rois(frame, corner)[0]
    assert face.confidence > 0.8 and off.confidence < 0.5 and off.uncertainty > 2 * face.uncertainty
