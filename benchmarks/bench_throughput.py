"""Folder throughput of ``ddfa align``: the three-thread pipeline against one stage after another.

Usage::

    python benchmarks/bench_throughput.py --assets ../shared/assets \
        --photos ../shared/data/aflw2000-3d/AFLW2000-full [--count 300] [--rounds 3] [--outputs 2d_sparse]

Each round processes the first ``--count`` photos of the folder twice, with the same writing
as ``ddfa align`` (JSON + ``--outputs``): sequentially (:func:`ddfa.pipeline.throughput.sequential`:
decode, align, write, one after another; the engine on all cores) and pipelined
(:func:`~ddfa.pipeline.throughput.pipelined`: three threads; the engine on all cores but one,
:func:`~ddfa.pipeline.throughput.pipeline_threads`, as ``ddfa align`` does); rounds alternate
the order. Printed per round and as medians: images/s of each, the per-image medians of the three
stages and their sum (what a sequential run is bound by), and the pipelined speed's ratio to it.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

from ddfa.cli.main import blas_on_one_thread

# numpy's BLAS on one thread, as in the ddfa command (set before numpy loads; OPENBLAS_NUM_THREADS=2
# in the environment measures the threaded BLAS instead, whose workers spin after each product)
blas_on_one_thread(["align"])

import ddfa  # noqa: E402
from ddfa.cli.align import encode_for_output  # noqa: E402
from ddfa.io.image import read_image  # noqa: E402
from ddfa.io.results import image_result, write_json  # noqa: E402
from ddfa.pipeline.throughput import pipeline_threads, pipelined, sequential  # noqa: E402
from ddfa.render.outputs import check_output_names, write_outputs  # noqa: E402


def run(mode, aligner, photos: list[Path], outputs: list[str], out_dir: Path) -> tuple[float, dict]:
    encoded: dict[Path, dict[str, bytes]] = {}  # as ddfa align: the work either later stage may do

    def share(path: Path, image, faces) -> None:
        encoded[path] = encode_for_output(outputs, image, faces)

    def write(path: Path, image, faces) -> None:
        write_json(out_dir / f"{path.stem}.json", image_result(str(path), image.shape, faces, "mb05"))
        write_outputs(outputs, image, faces, out_dir, path.stem, encoded=encoded.pop(path, None))

    start = time.perf_counter()
    stages: dict[str, list[float]] = {"decode": [], "process": [], "write": []}
    for out in mode(photos, read_image, lambda path, image: aligner(image), write, share=share):
        if out.error is not None:
            raise out.error
        for stage, seconds in out.seconds.items():
            stages[stage].append(seconds)
    wall = time.perf_counter() - start
    return len(photos) / wall, {k: statistics.median(v) * 1e3 for k, v in stages.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--assets", default=None)
    parser.add_argument("--photos", required=True, help="folder of photos (e.g. AFLW2000-full)")
    parser.add_argument("--count", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--outputs", default="2d_sparse", help="as ddfa align --outputs ('none': JSON only)")
    parser.add_argument("--backend", default="auto")
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    photos = sorted(Path(args.photos).glob("*.jpg"))[: args.count]
    outputs = check_output_names([] if args.outputs == "none" else args.outputs.split(","))
    aligner = ddfa.FaceAligner(assets=args.assets, backend=args.backend, threads=args.threads)
    # as ddfa align does in throughput mode: the engine leaves a core to reading and writing
    pipe_threads = args.threads or pipeline_threads()
    pipe_aligner = ddfa.FaceAligner(assets=args.assets, backend=args.backend, threads=pipe_threads)
    aligner(str(photos[0])), pipe_aligner(str(photos[0]))  # warm-up (compiles)
    # landmark visibility (written into every JSON) as ddfa align computes it for this many images
    from ddfa.cli.align import KERNELS_FROM_IMAGES
    from ddfa.render.visibility import compiled_kernels_loaded, load_compiled_kernels

    if len(photos) >= KERNELS_FROM_IMAGES:
        load_compiled_kernels()
    print(f"landmark visibility: {'numba kernels' if compiled_kernels_loaded() else 'numpy'}; numpy's BLAS threads: "
          f"OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS')}")
    rates: dict[str, list[float]] = {"sequential": [], "pipelined": []}
    stage_rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            order = [("sequential", sequential), ("pipelined", pipelined)]
            for name, mode in order if r % 2 == 0 else order[::-1]:
                rate, stages = run(mode, aligner if name == "sequential" else pipe_aligner, photos, outputs,
                                   Path(tmp))
                rates[name].append(rate)
                if name == "sequential":
                    stage_rows.append(stages)
                print(f"round {r + 1} {name:<10} {rate:6.1f} images/s"
                      + (f"  (stage medians ms: {', '.join(f'{k} {v:.1f}' for k, v in stages.items())})"
                         if name == "sequential" else ""), flush=True)
    stage = {k: statistics.median(row[k] for row in stage_rows) for k in stage_rows[0]}
    total = sum(stage.values())
    seq, pipe = statistics.median(rates["sequential"]), statistics.median(rates["pipelined"])
    print(f"\n{len(photos)} photos, {aligner!r}, outputs: {args.outputs}, medians of {args.rounds} rounds; "
          f"engine threads: sequential {args.threads or 'all'}, pipelined {pipe_threads}")
    print("per image, sequential stages: " + " + ".join(f"{k} {v:.1f}" for k, v in stage.items())
          + f" = {total:.1f} ms ({1e3 / total:.1f} images/s)")
    print(f"sequential run: {seq:.1f} images/s; pipelined: {pipe:.1f} images/s "
          f"({pipe / seq:.2f}x the sequential run, {pipe * total / 1e3:.2f}x the sum of stages)")
    print(f"slowest stage alone: {max(stage.values()):.1f} ms ({1e3 / max(stage.values()):.1f} images/s)")


if __name__ == "__main__":
    main()
