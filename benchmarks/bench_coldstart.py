"""Cold start of ``ddfa align photo.jpg --outputs none``: the whole process, converted models cached.

Usage::

    python benchmarks/bench_coldstart.py --assets ../shared/assets [--runs 9] [--photo PATH]

Runs the command (with ``--overwrite``: a re-run would otherwise skip the photo as done) ``--runs``
times per engine in fresh processes, the engines taking turns
(after one untimed run each, which fills the caches), and prints the median wall time of the
whole process (interpreter start to exit), with ``python -c pass``, ``import numpy, cv2`` (the floor of any
ddfa run) and ``import ddfa`` measured the same way for scale, and which heavy modules each
process imported. Bytecode is cached as in an installed package (``--no-bytecode``: not).
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CHECK = "import sys, atexit; atexit.register(lambda: print('IMPORTED', sorted(m for m in ('torch', 'onnx', " \
        "'onnxruntime', 'openvino', 'scipy', 'numba') if m in sys.modules), file=sys.stderr)); "


#: the environment of the timed processes: as an installed ddfa runs, with its modules' bytecode
#: cached (``PYTHONDONTWRITEBYTECODE``, set on some build machines, would make every start
#: compile ddfa's ~60 modules from source again: 0.15-0.35 s here); see ``--no-bytecode``
BASE_ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed(argv: list[str], env: dict | None = None) -> tuple[float, float, str]:
    """Wall and CPU seconds (user + system, all its threads) of one process, and what it imported."""
    cpu, start = _children_cpu(), time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True, env={**BASE_ENV, **(env or {})})
    elapsed, cpu = time.perf_counter() - start, _children_cpu() - cpu
    if done.returncode != 0:
        raise SystemExit(f"failed: {' '.join(argv)}\n{done.stderr}")
    imported = [line for line in done.stderr.splitlines() if line.startswith("IMPORTED")]
    return elapsed, cpu, imported[-1][len("IMPORTED "):] if imported else ""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--assets", default=None)
    parser.add_argument("--photo", default=None, help="default: 3DDFA_V2/examples/inputs/JianzhuGuo.jpg")
    parser.add_argument("--runs", type=int, default=9)
    parser.add_argument("--engines", nargs="+", default=["auto", "onnxruntime", "openvino"])
    parser.add_argument("--compare-src", default=None, metavar="DIR",
                        help="also time another ddfa source tree (its src/ folder, e.g. an earlier version "
                        "unpacked with `git archive`), run with PYTHONPATH=DIR and its default backend")
    parser.add_argument("--no-bytecode", action="store_true",
                        help="keep $PYTHONDONTWRITEBYTECODE (default: unset, so the untimed first runs cache bytecode)")
    args = parser.parse_args()
    if args.no_bytecode and "PYTHONDONTWRITEBYTECODE" in os.environ:
        BASE_ENV["PYTHONDONTWRITEBYTECODE"] = os.environ["PYTHONDONTWRITEBYTECODE"]
    assets = args.assets or os.environ.get("DDFA_HOME", "")
    photo = args.photo or str(Path(assets) / "3DDFA_V2/examples/inputs/JianzhuGuo.jpg")
    py = sys.executable
    with tempfile.TemporaryDirectory() as out:
        commands = {"python -c pass": [py, "-c", "pass"], "import numpy, cv2": [py, "-c", "import numpy, cv2"],
                    "import ddfa": [py, "-c", CHECK + "import ddfa"]}
        for engine in args.engines:
            commands[f"ddfa align ({engine})"] = [
                py, "-c", CHECK + "from ddfa.cli.main import console; console()",  # as the `ddfa` script
                "align", photo, "--assets", assets, "--outputs", "none", "--output", out, "--quiet", "--overwrite",
                "--backend", engine]
        envs: dict[str, dict] = {}
        if args.compare_src:
            name = f"ddfa align ({args.compare_src})"
            run_main = ("import sys; from ddfa.cli import main as m; "  # the `ddfa` script of that version
                        "m.console() if hasattr(m, 'console') else sys.exit(m.main(sys.argv[1:]))")
            commands[name] = [py, "-c", CHECK + run_main, "align", photo, "--assets", assets, "--outputs", "none",
                              "--output", out, "--quiet", "--overwrite"]
            envs[name] = {"PYTHONPATH": args.compare_src}
        for name, argv in commands.items():  # fill the caches; not timed
            timed(argv, envs.get(name))
        samples: dict[str, list[float]] = {name: [] for name in commands}
        cpu: dict[str, list[float]] = {name: [] for name in commands}
        imported: dict[str, str] = {}
        for _ in range(args.runs):
            for name, argv in commands.items():
                seconds, cpu_seconds, modules = timed(argv, envs.get(name))
                samples[name].append(seconds)
                cpu[name].append(cpu_seconds)
                imported[name] = modules
    print(f"whole process, median of {args.runs} interleaved runs (cache warm), {photo}; wall time, and CPU time "
          "(user + system, all threads: less sensitive than wall time to other jobs on the machine)")
    for name, values in samples.items():
        print(f"  {name:<28} {statistics.median(values):6.3f} s   (min {min(values):.3f})   "
              f"CPU {statistics.median(cpu[name]):6.3f} s   imported: {imported.get(name) or '-'}")


if __name__ == "__main__":
    main()
