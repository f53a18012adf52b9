"""Fixtures of the video tests: obama.mp4 decoded once, and a synthetic two-face clip."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import pytest


@pytest.fixture(scope="session")
def aligner(default_aligner):
    """Video runs on the default detector (YuNet): every video test uses the pipeline users get."""
    return default_aligner


@pytest.fixture(scope="session")
def obama_path(data_dir):
    path = data_dir / "video" / "obama.mp4"
    assert path.exists(), path
    return path


@pytest.fixture(scope="session")
def obama_frames(obama_path):
    """The 55 frames of obama.mp4, (720, 1280, 3) uint8 BGR."""
    from ddfa.video import VideoSource

    return [frame.image for frame in VideoSource(obama_path)]


@pytest.fixture(scope="session")
def obama_tracks(aligner, obama_frames):
    """Raw (unsmoothed) tracking of obama.mp4 with the default policy, images dropped."""
    from ddfa.video import VideoTracker

    tracker = VideoTracker(aligner, smoothing="none")
    results = list(tracker.track(obama_frames, fps=25.0))
    for result in results:
        result.image = None
    return tracker, results


@dataclass
class SyntheticClip:
    """Frames and ground truth of the synthetic clip.

    ``centres[name]`` is an (F, 2) array of each pasted face's patch centre per frame;
    ``inside[name]`` (F,) says the whole patch lies inside the frame, ``present[name]`` that
    some of it does.
    """

    frames: list
    centres: dict
    inside: dict
    present: dict
    patch: int
    size: tuple


def _face_patch(aligner, path, size: int) -> np.ndarray:
    from ddfa.pipeline.crop import crop_face, roi_from_box

    image = cv2.imread(str(path))
    detections = aligner.detect(image)
    return crop_face(image, roi_from_box(detections.boxes[:1])[0], size)


@pytest.fixture(scope="session")
def synthetic_clip(aligner, assets_dir) -> SyntheticClip:
    """56 frames of 480x300: two faces from the shared photos pasted on a blurred-noise canvas.

    ``emma`` moves right at 12 px/frame (y = 120), crosses ``jianzhu`` (moving left at
    5.8 px/frame, y = 170; emma's chin and mouth are hidden behind him at the crossing, frame
    ~18), leaves the frame on the right (gone from frame 39), turns round at frame 40 and comes
    back (whole again from frame 51).
    """
    inputs = assets_dir / "3DDFA_V2/examples/inputs"
    patch, width, height, count = 100, 480, 300, 56
    patches = {"emma": _face_patch(aligner, inputs / "emma.jpg", patch),
               "jianzhu": _face_patch(aligner, inputs / "JianzhuGuo.jpg", patch)}
    yy, xx = np.mgrid[0:patch, 0:patch]
    radius = np.hypot((xx - patch / 2 + 0.5) / (0.46 * patch), (yy - patch / 2 + 0.5) / (0.5 * patch))
    mask = np.clip((1 - radius) / 0.12, 0, 1)[..., None].astype(np.float32)  # feathered ellipse
    rng = np.random.default_rng(0)
    background = cv2.GaussianBlur(rng.integers(60, 200, (height, width, 3)).astype(np.uint8), (0, 0), 8)
    t = np.arange(count, dtype=np.float64)
    centres = {
        "emma": np.stack([np.where(t <= 40, 80 + 12 * t, 560 - 12 * (t - 40)), np.full(count, 120.0)], axis=1),
        "jianzhu": np.stack([400 - 5.8 * t, np.full(count, 170.0)], axis=1),
    }
    frames = []
    for i in range(count):
        canvas = background.astype(np.float32)
        for name in ("emma", "jianzhu"):  # jianzhu is in front
            x0, y0 = (int(round(v - patch / 2)) for v in centres[name][i])
            X0, Y0, X1, Y1 = max(x0, 0), max(y0, 0), min(x0 + patch, width), min(y0 + patch, height)
            if X1 <= X0 or Y1 <= Y0:
                continue
            m = mask[Y0 - y0:Y1 - y0, X0 - x0:X1 - x0]
            canvas[Y0:Y1, X0:X1] = canvas[Y0:Y1, X0:X1] * (1 - m) + patches[name][Y0 - y0:Y1 - y0, X0 - x0:X1 - x0] * m
        frames.append(np.clip(np.rint(canvas), 0, 255).astype(np.uint8))
    half = patch / 2
    inside = {n: (c[:, 0] - half >= 0) & (c[:, 0] + half <= width) for n, c in centres.items()}
    present = {n: (c[:, 0] + half > 0) & (c[:, 0] - half < width) for n, c in centres.items()}
    return SyntheticClip(frames, centres, inside, present, patch, (width, height))
