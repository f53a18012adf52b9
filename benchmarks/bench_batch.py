"""Throughput of ``ddfa align`` against ``ddfa batch --engine local`` and ``--engine ray``, on
the same photos in one run, and the scaling from 1 to 2 workers.

Usage::

    python benchmarks/bench_batch.py [--data DIR] [--num 300] [--assets DIR] [--workers 1,2]
                                     [--address HEAD:6379] [--batch-size 16] [--small N]

Every configuration runs as its own ``ddfa`` command (a fresh process, as a user runs it) on the
first ``--num`` photos of ``--data`` (default: 300 AFLW2000-3D full photos, 450x450, mostly one
face): ``ddfa align PHOTO... --outputs none`` (JSON only, the same results as the batch tables),
then ``ddfa batch photos.txt`` (a list of the same photos) with each engine and worker count,
each batch worker running its networks on ``--threads`` threads (default 1: a worker is a core).

Printed per command: wall time and images/s on all photos (start-up included: importing torch,
starting workers or Ray, loading models), and what a long run sees: start-up seconds and
images/s after start-up, from the difference between the full run and a run of the same command
on the first ``--small`` photos, and images per CPU second from the same difference in CPU time
(user + system of the command and the processes it started). Scaling = images/s after start-up
with the most workers / with one.

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
    parser.add_argument("--small", type=int, default=None,
                        help="photos of the short run whose difference gives start-up and rates (default: "
                        "2 x batch size x most workers)")
    parser.add_argument("--out", default=str(REPO / "out/bench_batch"))
    args = parser.parse_args()

    files = sorted(p for p in Path(args.data).iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))[:args.num]
    workers = [int(w) for w in args.workers.split(",")]
    small = args.small or 2 * args.batch_size * max(workers)
    if len(files) < args.num or small >= len(files):
        sys.exit(f"{args.data}: {len(files)} photos; need --num ({args.num}) of them and more than --small ({small})")
    out = Path(args.out)
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    lists = {}
    for count in (small, len(files)):  # the same photos for every command: a list file for ddfa batch
        lists[count] = out / f"photos_{count}.txt"
        lists[count].write_text("".join(f"{path.resolve()}\n" for path in files[:count]))
    ddfa_cmd = [sys.executable, "-m", "ddfa.cli.main"]
    common = ["--assets", args.assets, "--quiet"]
    engines = [e for e in args.engines.split(",") if e]
    print(f"{len(files)} photos from {args.data}; {cpu_name()}, {os.cpu_count()} cores; "
          f"load average at start {os.getloadavg()[0]:.2f}; Python {platform.python_version()}")

    def measure(name: str, count: str, command) -> dict:
        """Run on ``small`` and on all photos: wall, CPU, and the marginal rates between them."""
        runs = {n: run(command(n)) for n in (small, len(files))}
        (wall_s, cpu_s), (wall, cpu) = runs[small], runs[len(files)]
        extra = len(files) - small
        rate = extra / (wall - wall_s) if wall > wall_s else float("nan")
        return {"name": name, "workers": count, "wall": wall, "cpu": cpu, "rate_wall": len(files) / wall,
                "rate": rate, "per_cpu": extra / (cpu - cpu_s) if cpu > cpu_s else float("nan"),
                "startup": wall_s - small / rate}

    rows = [measure("ddfa align", "-", lambda n: [*ddfa_cmd, "align", *(str(p.resolve()) for p in files[:n]),
                                                   "--output", str(out / f"align_{n}"), "--outputs", "none", *common])]
    for engine in engines:
        for count in workers:
            def command(n: int, engine: str = engine, count: int = count) -> list[str]:
                cmd = [*ddfa_cmd, "batch", str(lists[n]), "--output", str(out / f"batch_{engine}_{count}_{n}"),
                       "--engine", engine, "--workers", str(count), "--threads", str(args.threads),
                       "--batch-size", str(args.batch_size), *common]
                return cmd + (["--address", args.address] if engine == "ray" and args.address else [])

            rows.append(measure(f"ddfa batch --engine {engine}", str(count), command))
            success = json.loads((out / f"batch_{engine}_{count}_{len(files)}" / "_SUCCESS").read_text())
            assert success["counts"]["images"] == len(files), success["counts"]
            rows[-1]["worker_cpu"] = success["run"]["images_per_cpu_second"]

    print(f"{'command':<26}{'workers':>8}{'wall s':>8}{'img/s':>7}{'start-up s':>11}{'img/s after':>12}"
          f"{'img per':>9}{'img per':>9}{'CPU s':>7}")
    print(f"{'':<26}{'':>8}{'':>8}{'':>7}{'':>11}{'start-up':>12}{'CPU s':>9}{'wkr CPU s':>9}{'':>7}")
    for r in rows:
        worker = f"{r['worker_cpu']:.1f}" if r.get("worker_cpu") else "-"
        print(f"{r['name']:<26}{r['workers']:>8}{r['wall']:>8.1f}{r['rate_wall']:>7.1f}{r['startup']:>11.1f}"
              f"{r['rate']:>12.1f}{r['per_cpu']:>9.1f}{worker:>9}{r['cpu']:>7.1f}")
    print(f"(wall s, img/s, CPU s: all {len(files)} photos, start-up included; start-up s and img/s after start-up: "
          f"from the difference with a run on the first {small}; img per CPU s: the same difference in CPU time "
          "(user + system of the command and the processes it started and reaped; Ray's own processes count "
          "only when the command started them); img per wkr CPU s: images per CPU second the batch workers "
          "spent on them (ddfa batch's own accounting, start-up excluded; what one core does, whatever else "
          "runs on the machine))")
    for engine in engines:
        by_count = {int(r["workers"]): r for r in rows if r["name"].endswith(engine)}
        lo, hi = min(by_count), max(by_count)
        if hi > lo:
            print(f"scaling {engine} {lo} -> {hi} workers: {by_count[hi]['rate'] / by_count[lo]['rate']:.2f}x "
                  f"images/s after start-up, {by_count[hi]['rate_wall'] / by_count[lo]['rate_wall']:.2f}x overall")
    for r in rows[1:]:
        print(f"{r['name']} x{r['workers']}: {r['rate'] / rows[0]['rate']:.2f}x ddfa align's images/s after start-up")


if __name__ == "__main__":
    main()
