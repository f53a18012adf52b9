"""Which face sizes each detector finds at its defaults, by photo size (the scale policy).

Usage::

    python benchmarks/bench_scale_policy.py [--assets DIR] [--data DIR] [--detectors yunet faceboxes]

Faces of the AFLW2000-3D *development* photos (all yaw bins, evenly spaced) are pasted at a
given size (``sqrt(w·h)`` of their ground-truth landmark box) on blurred-noise canvases of
640 x 640, 1280 x 720 and 6000 x 6000 pixels (:func:`ddfa.eval.detection.paste_faces`); a face
counts as found by a box centred within half its size and of a similar size
(:func:`ddfa.eval.detection.faces_found`). Printed per detector and canvas: the share found at
each face size, the detections beyond the pasted faces, and the detection time.
"""

from __future__ import annotations

import argparse
import time

import ddfa
from ddfa.eval.detection import faces_found, load_full_photos, paste_faces

#: canvas (height, width) -> face sizes to try, pixels
CANVASES = {
    (640, 640): (10, 12, 14, 16, 20, 24, 32, 64, 128, 256),
    (720, 1280): (24, 32, 40, 48, 64, 128, 320),
    (6000, 6000): (30, 40, 64, 350, 1500),
}


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
    args = parser.parse_args()
    store = ddfa.AssetStore(args.assets)
    photos = load_full_photos(args.data, store=store, subset=120)
    for name in args.detectors:
        detector = ddfa.create_detector(name, base_options=ddfa.BaseOptions(assets=store, threads=args.threads))
        print(f"\n{name} (default options)")
        print(f"{'canvas':<14}{'face px':>8}{'faces':>7}{'found':>8}{'extra boxes':>13}{'ms':>9}")
        for shape, sizes in CANVASES.items():
            for size in sizes:
                canvas = paste_faces(shape, photos, layout(shape, size))
                start = time.perf_counter()
                found = detector.detect(canvas.image)
                ms = (time.perf_counter() - start) * 1e3
                hit = faces_found(canvas, found.boxes)
                print(f"{f'{shape[1]}x{shape[0]}':<14}{size:>8}{len(hit):>7}{hit.mean():>8.3f}"
                      f"{max(0, len(found) - int(hit.sum())):>13}{ms:>9.0f}", flush=True)


if __name__ == "__main__":
    main()
