"""Choose the test-time refinement passes and their combination rule on synthetic faces only.

Issue #15: ``AlignOptions.refine`` runs mirrored and jittered crops of each face through the
network and combines them. Which jitters, whether to mirror the jittered crops too, and whether
to combine in parameter space or landmark space are chosen HERE, on faces rendered by ``ddfa
synth`` (exact ground truth), never on AFLW2000-3D or AFLW (the AFLW2000-3D crops are the test
set, and the development photos hold the same faces).

    python experiments/refine_selection.py --assets ../shared/assets --out out/refine_selection

Steps: render (or reuse) ``--num`` synthetic crops with ``ddfa synth --seed 15``; run the
regressor once on a pool of passes (every candidate roi jitter, plain and mirrored) through
:func:`ddfa.pipeline.refine.pass_crops`; then score candidate sets of passes and combination
rules by the 68-point NME against the rendered ground truth (normalised by sqrt(w*h) of the true
landmark box, mean of the three |yaw| bins, ddfa's crop frame). Half of the faces (even
indices) select, the other half (odd) confirm the choice. Writes ``selection.json`` and
``selection.md`` (the table quoted in the README) to ``--out``.
"""

from __future__ import annotations

import argparse
import itertools
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

import ddfa
from ddfa.eval.protocols import nme, summarize_bins
from ddfa.morphable.frames import model_to_crop
from ddfa.pipeline.refine import IDENTITY, CropTransform, pass_crops, pass_landmarks_in_image, pass_params_in_roi

SEED = 15


def ensure_synth(folder: Path, num: int, assets: str) -> None:
    if (folder / "params.npz").exists() and len(np.load(folder / "params.npz")["params"]) >= num:
        return
    cmd = [sys.executable, "-m", "ddfa.cli.main", "synth", "--out", str(folder), "--num", str(num), "--seed",
           str(SEED), "--assets", assets, "--quiet"]
    print("running", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True)


def candidate_pool() -> list[CropTransform]:
    jitters = [CropTransform(scale=s) for s in (0.9, 0.95, 1.05, 1.1)]
    shifts = (-0.07, -0.05, -0.03, -0.02, 0.02, 0.03, 0.05, 0.07)
    jitters += [CropTransform(dx=d) for d in shifts] + [CropTransform(dy=d) for d in shifts]
    base = [IDENTITY, *jitters]
    return base + [CropTransform(t.scale, t.dx, t.dy, flip=True) for t in base]


def run_pool(crops: np.ndarray, pool, regressor) -> np.ndarray:
    """(N, T, 62) parameters of every pass (each in its own crop frame)."""
    roi = np.array([[0.0, 0.0, 120.0, 120.0]])
    out = np.empty((len(crops), len(pool), 62), np.float32)
    chunk = 64
    for start in range(0, len(crops), chunk):
        batch = np.concatenate([pass_crops(c, roi, pool) for c in crops[start:start + chunk]])
        out[start:start + chunk] = regressor(batch.reshape(-1, 120, 120, 3)).reshape(-1, len(pool), 62)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--assets", default="../shared/assets")
    parser.add_argument("--out", default="out/refine_selection")
    parser.add_argument("--synth", default="out/synth_refine", help="folder of the ddfa synth faces")
    parser.add_argument("--num", type=int, default=3000)
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    synth = Path(args.synth)
    ensure_synth(synth, args.num, args.assets)
    data = np.load(synth / "params.npz")
    names, gt_params, gt_pose = data["names"][: args.num], data["params"][: args.num], data["pose"][: args.num]
    model = ddfa.load_morphable_model(args.assets, "noneck")
    gt = model_to_crop(model.landmarks(gt_params.astype(np.float64)))[..., :2]
    yaw = gt_pose[:, 0]
    pool = candidate_pool()
    cache = out / "pool_params.npz"
    if cache.exists() and np.load(cache)["params"].shape[:2] == (len(names), len(pool)):
        params = np.load(cache)["params"]
    else:
        crops = np.stack([ddfa.read_image(synth / "images" / str(n)) for n in names])
        regressor = ddfa.create_model("mb05", assets=args.assets)
        t0 = time.perf_counter()
        params = run_pool(crops, pool, regressor)
        print(f"regressed {params.shape[0]} faces x {params.shape[1]} passes in {time.perf_counter() - t0:.0f} s")
        np.savez_compressed(cache, params=params)
    roi = np.tile(np.array([0.0, 0.0, 120.0, 120.0]), (len(names), 1))
    in_roi = pass_params_in_roi(params, roi, pool, model)  # (N, T, 62), common frame
    lmk = pass_landmarks_in_image(params, roi, pool, model)[..., :2]  # (N, T, 68, 2), exact
    index = {t: k for k, t in enumerate(pool)}

    def score(ids, rule, rows):
        if rule == "params":
            pred = model_to_crop(model.landmarks(in_roi[rows][:, ids].mean(axis=1)))[..., :2]
        elif rule == "landmarks":
            pred = lmk[rows][:, ids].mean(axis=1)
        else:  # landmark median
            pred = np.median(lmk[rows][:, ids], axis=1)
        return summarize_bins(nme(pred, gt[rows]), yaw[rows])

    flip = CropTransform(flip=True)
    sets: dict[str, list[CropTransform]] = {"plain": [IDENTITY], "plain+flip": [IDENTITY, flip]}
    for s, d in itertools.product((0.05, 0.1), (0.02, 0.03, 0.05, 0.07)):
        jit = [CropTransform(scale=1 - s), CropTransform(scale=1 + s), CropTransform(dx=-d), CropTransform(dx=d),
               CropTransform(dy=-d), CropTransform(dy=d)]
        sets[f"plain+flip+6 jitters (scale {s:g}, shift {d:g})"] = [IDENTITY, flip, *jit]
        sets[f"plain+flip+6 jitters (scale {s:g}, shift {d:g}), jitters mirrored too"] = [
            IDENTITY, flip, *jit, *(CropTransform(t.scale, t.dx, t.dy, flip=True) for t in jit)]
    sets["plain + 6 jitters (scale 0.05, shift 0.03), no mirror"] = [
        IDENTITY, CropTransform(scale=0.95), CropTransform(scale=1.05), *(CropTransform(dx=d) for d in (-0.03, 0.03)),
        *(CropTransform(dy=d) for d in (-0.03, 0.03))]
    sets[f"all {len(pool)} pool passes"] = list(pool)
    rules = ("params", "landmarks", "median")
    select = np.arange(len(names)) % 2 == 0
    rows = []
    for name, transforms in sets.items():
        ids = [index[t] for t in transforms]
        for rule in rules:
            if len(ids) == 1 and rule != "params":
                continue
            sel, conf = score(ids, rule, select), score(ids, rule, ~select)
            rows.append({"set": name, "passes": len(ids), "rule": rule, "select": sel, "confirm": conf})
            print(f"{name:75s} {rule:9s} select {sel['mean_of_bins']:.4f}  confirm {conf['mean_of_bins']:.4f}",
                  flush=True)
    lines = ["| passes | set | rule | selection half: mean of bins | [0,30] | (30,60] | (60,90] | confirmation half |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        s = r["select"]
        lines.append(f"| {r['passes']} | {r['set']} | {r['rule']} | {s['mean_of_bins']:.4f} | {s['bin_0_30']:.4f} | "
                     f"{s['bin_30_60']:.4f} | {s['bin_60_90']:.4f} | {r['confirm']['mean_of_bins']:.4f} |")
    (out / "selection.md").write_text(
        f"Synthetic faces: {len(names)} from `ddfa synth --seed {SEED}` (selection: even indices, {select.sum()}; "
        f"confirmation: odd, {(~select).sum()}). NME % (68 points, sqrt(w*h) of the true landmark box), ddfa crop "
        "frame, mb05.\n\n" + "\n".join(lines) + "\n")
    (out / "selection.json").write_text(json.dumps({"seed": SEED, "num": len(names), "rows": rows}, indent=1))
    print(f"wrote {out / 'selection.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
