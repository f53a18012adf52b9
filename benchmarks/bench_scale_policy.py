"""Which face sizes each detector finds at its defaults, by photo size (the scale policy).

Usage::

    python benchmarks/bench_scale_policy.py [--assets DIR] [--data DIR] [--detectors yunet faceboxes]

Faces of the AFLW2000-3D *development* photos (all yaw bins, evenly spaced) are pasted at a
given size (``sqrt(w·h)`` of their ground-truth landmark box) on blurred-noise canvases of
640 x 640, 1280 x 720 and 6000 x 6000 pixels (:func:`ddfa.eval.detection.paste_faces`); a face
counts as found by a box centred within half its size and of a similar size
(:func:`ddfa.eval.detection.faces_found`). Printed per detector and canvas: the share found at
each face size, the detections beyond the pasted faces, and the detection time.

``--compare-direct``: also runs the single-shot detectors with every pass's image resized from
the photo itself (the code before :func:`ddfa.detect.scale.pass_images` made each from the next
finer pass) on the same canvases, and prints the faces each way finds side by side, then times
both ways of making the pass images on camera-sized canvases (interleaved, medians).
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import statistics
import time

import numpy as np

import ddfa
import ddfa.detect.single_shot as single_shot
from ddfa.detect.scale import pass_images, plan_passes
from ddfa.detect.yunet import YuNetDetector, YuNetOptions
from ddfa.eval.detection import faces_found, load_full_photos, paste_faces

#: canvas (height, width) -> face sizes to try, pixels
CANVASES = {
    (640, 640): (10, 12, 14, 16, 20, 24, 32, 64, 128, 256),
    (720, 1280): (24, 32, 40, 48, 64, 128, 320),
    (6000, 6000): (30, 40, 64, 350, 1500),
}
#: camera-sized canvases (``--compare-direct``): face sizes to try
COMPARE_CANVASES = {(3024, 4032): (40, 120, 600), (2160, 3840): (40, 300)}


def layout(shape: tuple[int, int], size: int, limit: int = 120) -> list[tuple[int, int, int, float]]:
    """Cells of side ``2 * size`` (1.2 x for faces above a quarter of the canvas) filling the canvas."""
    height, width = shape
    side = int(2 * size) if 2 * size <= min(shape) // 2 else int(1.2 * size)
    cols, rows = max(1, width // side), max(1, height // side)
    return [(c * side, r * side, side, float(size)) for r in range(rows) for c in range(cols)][:limit]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--assets", default=None)
    parser.add_argument("--data", default=None, help="the aflw2000-3d folder (default: beside the assets)")
    parser.add_argument("--detectors", nargs="+", default=["yunet", "faceboxes"])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--compare-direct", action="store_true",
                        help="also every pass resized from the photo (the code before), side by side")
    args = parser.parse_args()
    store = ddfa.AssetStore(args.assets)
    photos = load_full_photos(args.data, store=store, subset=120)
    canvases = {**CANVASES, **(COMPARE_CANVASES if args.compare_direct else {})}
    for name in args.detectors:
        detector = ddfa.create_detector(name, base_options=ddfa.BaseOptions(assets=store, threads=args.threads))
        compare = args.compare_direct and isinstance(detector, single_shot.SingleShotDetector)
        print(f"\n{name} (default options)")
        print(f"{'canvas':<14}{'face px':>8}{'faces':>7}{'found':>8}{'extra boxes':>13}{'ms':>9}"
              + (f"{'found, direct':>15}{'extra, direct':>15}{'ms, direct':>12}" if compare else ""))
        for shape, sizes in canvases.items():
            for size in sizes:
                canvas = paste_faces(shape, photos, layout(shape, size))
                row = f"{f'{shape[1]}x{shape[0]}':<14}{size:>8}"
                for direct in (False, True) if compare else (False,):
                    with _every_pass_from_the_photo() if direct else contextlib.nullcontext():
                        start = time.perf_counter()
                        found = detector.detect(canvas.image)
                        ms = (time.perf_counter() - start) * 1e3
                    hit = faces_found(canvas, found.boxes)
                    extra = max(0, len(found) - int(hit.sum()))
                    row += (f"{hit.mean():>15.3f}{extra:>15}{ms:>12.0f}" if direct else
                            f"{len(hit):>7}{hit.mean():>8.3f}{extra:>13}{ms:>9.0f}")
                print(row, flush=True)
    if args.compare_direct:
        time_pass_images(photos)


@contextlib.contextmanager
def _every_pass_from_the_photo():
    """The single-shot detectors as before :func:`pass_images` used finer passes (A/B only)."""
    saved = single_shot.pass_images
    single_shot.pass_images = functools.partial(pass_images, from_finer=False)
    try:
        yield
    finally:
        single_shot.pass_images = saved


def time_pass_images(photos, repeats: int = 15) -> None:
    """ms to make every pass's image of a canvas, from finer passes vs from the photo each."""
    options = YuNetOptions()
    print("\npass images (YuNet's default passes), median ms of interleaved runs; "
          "mean / max |difference| (gray levels)")
    for shape in ((3024, 4032), (2160, 3840), (1080, 1920), (6000, 6000)):
        image = paste_faces(shape, photos, layout(shape, 200)).image
        passes = plan_passes(*shape, options, stride=32, min_input_face=YuNetDetector.min_input_face)
        times: dict[bool, list[float]] = {True: [], False: []}
        for _ in range(repeats):
            for finer in (True, False):
                start = time.perf_counter()
                pass_images(image, passes, from_finer=finer)
                times[finer].append((time.perf_counter() - start) * 1e3)
        new, old = pass_images(image, passes), pass_images(image, passes, from_finer=False)
        diff = np.concatenate([np.abs(a.astype(np.int16) - b).ravel() for a, b in zip(new, old)])
        fine, direct = statistics.median(times[True]), statistics.median(times[False])
        print(f"  {shape[1]}x{shape[0]}, passes {[p.size for p in passes]}: from finer passes {fine:.1f} ms, each "
              f"from the photo {direct:.1f} ms ({fine / direct:.2f}x); |difference| {diff.mean():.3f} / {diff.max()}")


if __name__ == "__main__":
    main()
