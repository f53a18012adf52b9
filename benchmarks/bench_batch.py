"""Throughput of ``ddfa align`` against ``ddfa batch --engine local`` and ``--engine ray``, on
the same photos in one run, and the scaling from 1 to 2 workers.

Usage::

    python benchmarks/bench_batch.py [--data DIR] [--num 300] [--assets DIR] [--workers 1,2]
                                     [--address ray://head:10001] [--batch-size 16]

Every configuration runs as its own ``ddfa`` command (a fresh process, as a user runs it) on the
first ``--num`` photos of ``--data`` (default: the AFLW2000-3D full photos, 450x450, mostly one
face): ``ddfa align PHOTO... --outputs none`` (JSON only, the same results as the batch tables),
then ``ddfa batch photos.txt`` (a list of the same photos) with each engine and worker count into
a fresh output folder. Printed per command: wall time (start-up included), CPU time of the
command and the processes it started, images/s over the wall time, and for ``ddfa batch`` the
steady rate (images/s from the first result to the last, i.e. once the workers have loaded their
models; from ``_SUCCESS``). For ``ddfa align`` the steady rate is timed in this process on the
same photos (the per-image loop ``ddfa align`` runs, after a warm-up). Scaling = rate with the
most workers / rate with one; each batch worker runs its networks on ``--threads`` threads
(default 1: a worker is a core).

With ``--address`` the Ray runs use that cluster (``--workers`` is then the number of CPU actors,
and ``--data`` must be readable at the same path on every node); without it each Ray run starts
a local Ray with ``--workers`` CPUs. Outputs go to ``out/bench_batch/`` (git-ignored).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def run(command: list[str]) -> tuple[float, float]:
    """Run a ddfa command; (wall seconds, CPU seconds of it and every process it started)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if result.returncode not in (0, 1):
        sys.exit(f"failed ({result.returncode}): {' '.join(command)}\n{result.stderr[-3000:]}")
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def steady_align(files: list[Path], assets: str | None) -> float:
    import ddfa

    aligner = ddfa.FaceAligner(assets=assets)
    for path in files[:5]:
        aligner(str(path))
    start = time.perf_counter()
    for path in files:
        aligner(str(path))
    return len(files) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=str(REPO.parent / "shared/data/aflw2000-3d/AFLW2000-full"),
                        help="folder of photos (default: ../shared/data/aflw2000-3d/AFLW2000-full)")
    parser.add_argument("--num", type=int, default=300, help="photos to use (default: 300)")
    parser.add_argument("--assets", default=os.environ.get("DDFA_HOME") or str(REPO.parent / "shared/assets"))
    parser.add_argument("--workers", default="1,2", help="worker counts to compare (default: 1,2)")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--threads", type=int, default=1,
                        help="inference threads per batch worker (default: 1, so that N workers use N cores)")
    parser.add_argument("--address", default=None, help="Ray cluster for the ray runs (default: a local Ray)")
    parser.add_argument("--engines", default="local,ray", help="batch engines to run (default: local,ray)")
    parser.add_argument("--out", default=str(REPO / "out/bench_batch"))
    args = parser.parse_args()

    files = sorted(p for p in Path(args.data).iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))[:args.num]
    if len(files) < args.num:
        sys.exit(f"{args.data}: only {len(files)} photos, asked for {args.num}")
    out = Path(args.out)
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    photos = out / "photos.txt"  # the same photos for every command: a list file for ddfa batch
    photos.write_text("".join(f"{path.resolve()}\n" for path in files))
    ddfa_cmd = [sys.executable, "-m", "ddfa.cli.main"]
    common = ["--assets", args.assets, "--quiet"]
    workers = [int(w) for w in args.workers.split(",")]
    print(f"{len(files)} photos from {args.data}; {cpu_name()}, {os.cpu_count()} cores; "
          f"load average at start {os.getloadavg()[0]:.2f}; Python {platform.python_version()}")

    rows = []
    wall, cpu = run([*ddfa_cmd, "align", *(str(p.resolve()) for p in files), "--output", str(out / "align"),
                     "--outputs", "none", *common])
    rows.append(("ddfa align", "-", wall, cpu, len(files) / wall, steady_align(files, args.assets)))
    for engine in [e for e in args.engines.split(",") if e]:
        for count in workers:
            target = out / f"batch_{engine}_{count}"
            command = [*ddfa_cmd, "batch", str(photos), "--output", str(target), "--engine", engine,
                       "--workers", str(count), "--threads", str(args.threads), "--batch-size", str(args.batch_size),
                       *common]
            if engine == "ray" and args.address:
                command += ["--address", args.address]
            wall, cpu = run(command)
            success = json.loads((target / "_SUCCESS").read_text())
            assert success["counts"]["images"] == len(files), success["counts"]
            rows.append((f"ddfa batch --engine {engine}", str(count), wall, cpu, len(files) / wall,
                         success["run"]["steady_images_per_s"]))

    print(f"{'command':<26}{'workers':>8}{'wall s':>9}{'CPU s':>8}{'img/s (wall)':>14}{'img/s (steady)':>16}"
          f"{'img per CPU s':>15}")
    for name, count, wall, cpu, rate, steady in rows:
        steady_text = f"{steady:.1f}" if steady else "-"
        cpu_text = f"{len(files) / cpu:.1f}" if cpu > 0 else "-"
        print(f"{name:<26}{count:>8}{wall:>9.1f}{cpu:>8.1f}{rate:>14.1f}{steady_text:>16}{cpu_text:>15}")
    print("(CPU s: user + system time of the command and the processes it started and reaped; a Ray "
          "cluster's own processes are counted only when the command started them)")
    for engine in [e for e in args.engines.split(",") if e]:
        by_count = {int(c): (r, s) for n, c, _, _, r, s in rows if n.endswith(engine)}
        lo, hi = min(by_count), max(by_count)
        if hi > lo:
            (r1, s1), (r2, s2) = by_count[lo], by_count[hi]
            steady_text = f"{s2 / s1:.2f}x" if s1 and s2 else "-"
            print(f"scaling {engine} {lo} -> {hi} workers: {r2 / r1:.2f}x (wall), {steady_text} (steady)")
    base = rows[0][5]
    for name, count, _, _, _, steady in rows[1:]:
        if steady:
            print(f"{name} x{count}: steady {steady / base:.2f}x ddfa align's per-image loop")


if __name__ == "__main__":
    main()
