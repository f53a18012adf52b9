"""Speed of the dense-mesh renderer on one CPU core: ms per face and per 720p frame.

Builds real 1280x720 frames (a shared example photo scaled to 720 and to 360 px high,
centred on a black frame: faces of about 410 and 200 px), aligns the face, and times in
the same run:

* the first call of the process: numba compiling the kernels, or loading them from its
  on-disk cache (reported separately; not part of the per-frame numbers);
* ``rasterize``: ddfa's z-buffer rasteriser alone (:func:`ddfa.render.rasterize`);
* ``render_shaded``: the ``3d`` output (rasterise + Phong shading + blending over the frame);
* ``render_depth`` and ``render_pncc``: the other dense outputs (same rasteriser);
* ``naive``: a baseline renderer: painter's algorithm, triangles sorted far to near and each
  filled with ``cv2.fillConvexPoly`` in a Python loop, flat-shaded (what a simple Python
  renderer does; no per-pixel depth test);
* the same for three faces in one frame (the face repeated side by side).

Run: ``taskset -c 1 python benchmarks/bench_render.py [--assets DIR] [--repeat N]``. Numbers
are wall times, best and median of N runs, one thread (the target: ``render_shaded`` <= 5 ms
per face at 720p; 3DDFA_V2's compiled C renderer takes about 4 ms).
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS",
             "NUMBA_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import cv2  # noqa: E402
import numpy as np  # noqa: E402

cv2.setNumThreads(1)


def naive_render(image, vertices, triangles, light=(-0.25, -0.35, 1.0)):
    """Painter's algorithm with one cv2.fillConvexPoly call per triangle (the baseline)."""
    out = image.copy()
    light = np.asarray(light, np.float32) / np.linalg.norm(light)
    for verts in vertices:
        corners = verts[triangles]  # (T, 3, 3)
        normals = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
        normals /= np.maximum(np.linalg.norm(normals, axis=1, keepdims=True), 1e-12)
        shade = 0.3 + 0.65 * np.clip(np.abs(normals @ light), 0, 1)
        order = np.argsort(corners[:, :, 2].mean(axis=1))  # far to near
        points = np.round(corners[:, :, :2] * 16).astype(np.int32)
        colors = (0.4 * out.mean() + 0.6 * 217 * shade).astype(np.int32)
        for t in order:
            c = int(colors[t])
            cv2.fillConvexPoly(out, points[t], (c, c, c), cv2.LINE_8, 4)
    return out


def timeit(fn, repeat):
    fn()  # warm up (caches, first-call imports)
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1e3 * min(times), 1e3 * float(np.median(times))


def jit_state() -> str:
    """How the kernels of ddfa.render were obtained in this process: from numba's disk cache
    (hits) or compiled (misses)."""
    from ddfa.render import dense, raster

    kernels = [getattr(module, name) for module in (raster, dense) for name in dir(module)
               if name.endswith("_kernel") or name == "_window"]
    hits = sum(sum(k.stats.cache_hits.values()) for k in kernels if hasattr(k, "stats"))
    misses = sum(sum(k.stats.cache_misses.values()) for k in kernels if hasattr(k, "stats"))
    return f"{hits} kernels loaded from numba's cache, {misses} compiled"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--assets", default=None, help="asset folder (default: ../shared/assets or $DDFA_HOME)")
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--photo", default="3DDFA_V2/examples/inputs/JianzhuGuo.jpg",
                        help="photo (relative to the asset folder) to build the 720p frame from")
    args = parser.parse_args(argv)

    import torch

    torch.set_num_threads(1)
    import ddfa

    assets = (args.assets or os.environ.get("DDFA_HOME")
              or str(Path(__file__).resolve().parents[1].parent / "shared" / "assets"))
    photo = ddfa.read_image(Path(assets) / args.photo)
    aligner = ddfa.FaceAligner(assets=assets, threads=1)

    def frame_with_face(photo_height):
        """A 1280x720 frame holding the photo scaled to ``photo_height`` px, and its face."""
        scale = photo_height / photo.shape[0]
        small = cv2.resize(photo, (int(round(photo.shape[1] * scale)), photo_height), interpolation=cv2.INTER_AREA)
        frame = np.zeros((720, 1280, 3), np.uint8)
        x0, y0 = (1280 - small.shape[1]) // 2, (720 - photo_height) // 2
        frame[y0:y0 + photo_height, x0:x0 + small.shape[1]] = small[:, :1280]
        faces = aligner(frame, max_faces=1)
        if not faces:
            raise SystemExit("no face found in the benchmark frame")
        return frame, faces[0]

    class Shifted:  # a copy of a face moved sideways
        def __init__(self, face, dx):
            self.vertices = face.vertices + np.array([dx, 0, 0], np.float32)
            self.triangles = face.triangles
            self.model = face.model

    frames = {height: frame_with_face(height) for height in (720, 360)}

    # the first calls of the process: import, then JIT compile or cache load of the kernels
    start = time.perf_counter()
    from ddfa.render import rasterize, render_depth, render_pncc, render_shaded
    imported = time.perf_counter()
    frame, face = frames[720]
    render_shaded(frame, [face])
    render_depth(frame, [face])
    render_pncc(frame, [face])
    first = time.perf_counter()
    print(f"first calls: import ddfa.render {1e3 * (imported - start):.0f} ms (numba), first render_shaded + "
          f"render_depth + render_pncc {1e3 * (first - imported):.0f} ms ({jit_state()})")

    print(f"1280x720 frames; {args.repeat} runs, 1 thread; ms best / median")
    results = {}

    def run(name, fn, repeat):
        best, median = timeit(fn, repeat)
        results[name] = best
        print(f"  {name:<52s} {best:8.2f} / {median:8.2f} ms")

    for photo_height in (720, 360):
        frame, face = frames[photo_height]
        roi = face.roi_box[2] - face.roi_box[0]
        tag = f"{roi:.0f} px face"
        print(f" one face, roi {tag} ({len(face.vertices)} vertices, {len(face.triangles)} triangles)")
        # (run() calls each lambda before the loop moves on: binding frame and face late is safe)
        run(f"rasterize, {tag}", lambda: rasterize(face.vertices, face.triangles, 720, 1280), args.repeat)  # noqa: B023
        run(f"render_shaded (3d output), {tag}", lambda: render_shaded(frame, [face]), args.repeat)  # noqa: B023
        run(f"render_depth, {tag}", lambda: render_depth(frame, [face]), args.repeat)  # noqa: B023
        run(f"render_pncc, {tag}", lambda: render_pncc(frame, [face]), args.repeat)  # noqa: B023
        run(f"naive painter's + cv2.fillConvexPoly, {tag}",
            lambda: naive_render(frame, face.vertices[None], face.triangles),  # noqa: B023
            max(3, args.repeat // 10))
        if photo_height == 720:
            width = float(face.vertices[:, 0].max() - face.vertices[:, 0].min())
            three = [Shifted(face, dx) for dx in (-0.9 * width, 0.0, 0.9 * width)]
            big = (frame, tag)
    frame, tag = big
    print(f" three faces of {tag} side by side in one frame")
    stacked = np.stack([f.vertices for f in three])
    run("rasterize, 3 faces", lambda: rasterize(stacked, three[0].triangles, 720, 1280), args.repeat)
    run("render_shaded, 3 faces", lambda: render_shaded(frame, three), args.repeat)
    run("naive, 3 faces", lambda: naive_render(frame, stacked, three[0].triangles), max(3, args.repeat // 10))
    print("summary (best of runs; one face per 720p frame: ms per face = ms per frame):")
    for name in [n for n in results if n.startswith("render_shaded (3d")]:
        tag = name.split(", ", 1)[1]
        naive = results[f"naive painter's + cv2.fillConvexPoly, {tag}"]
        verdict = "meets" if results[name] <= 5.0 else "MISSES"
        print(f"  {tag}: render_shaded {results[name]:.2f} ms ({verdict} the 5 ms target), "
              f"rasterize {results['rasterize, ' + tag]:.2f} ms; naive baseline {naive:.1f} ms "
              f"({naive / results[name]:.0f}x slower)")
    three_ms, naive_three = results["render_shaded, 3 faces"], results["naive, 3 faces"]
    print(f"  3 faces in one 720p frame: render_shaded {three_ms:.2f} ms per frame = {three_ms / 3:.2f} ms per face; "
          f"naive {naive_three:.1f} ms per frame ({naive_three / three_ms:.0f}x slower)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
