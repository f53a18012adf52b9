"""Landmark visibility against AFLW2000-3D's own visibility marks, past 45 degrees of yaw.

Issue #15. AFLW's 21-point annotation (``pt2d`` of ``aflw2000_3d_annotations.npz`` = the
benchmark's ``AFLW2000-3D.pts21.npy``) marks the points the annotators could not see with -1.
Each AFLW point is predicted from the 68 landmarks with the map the AFLW benchmark derived from
ground truth (``ddfa.eval.aflw.AFLW21_FROM_68``); an AFLW point that averages several landmarks
(eye and mouth centres) counts as visible when at least half of them are. Faces past 45 degrees
of |yaw| (``AFLW2000-3D.pose.npy``): 492 faces, 21 points each, all scored.

Two predictions per face, both from mb05 on the 120x120 benchmark crops:

* ``ddfa.render.visibility.landmark_visibility`` (mesh normals and z-buffer). Its per-landmark
  facing thresholds (``FACING_GROUPS``) are chosen HERE, with ``--calibrate``, on the faces of
  the 1700 development photos only (coordinate ascent of the agreement over the groups'
  thresholds on a 0.02 grid, ties to the value nearest 0, keeping the two physical checks on
  the mean face), and reported on the other 300 faces and on all;
* the crude rule, "the landmarks beyond the nose on the far side are hidden"
  (``ddfa.render.visibility.crude_visibility``, with the predicted yaw).

``--analyse`` prints where each rule disagrees with the annotators: per AFLW point, on the far
and the near side, by yaw bin, and which way.

    python experiments/visibility_check.py --assets ../shared/assets [--calibrate] [--analyse] [--refine full]

Result (mb05, no refinement; 340 development / 152 held-out faces past 45 deg): mesh 92.62 /
91.89 / 92.39 % (dev / held-out / all), crude rule 91.27 / 91.07 / 91.21 %; 20-28 ms per face
(numpy, on the shared 2-core machine; the mean face shows all 68 landmarks from the front).
Short of the issue's 93 %. Where the rest lies (``--analyse``): the near-side points the
annotators marked hidden (hair over the near ear lobe, 26 % of them; over the near brows, ~8 %)
are not self-occlusion and no mesh rule sees them; the far-side inner brow, brow centre and eye
centre at 45-60 deg are split between the marks at the same yaw. A rule that knows the true yaw
and side of every point and takes the majority mark per 5-degree bin (fit on all 492 faces, so
optimistic) reaches 92.15 %; refitting the mesh by Procrustes onto the ground-truth 3D landmarks
(removing mb05's pose error) does not raise the mesh rule either.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

import ddfa
from ddfa.eval.aflw import AFLW21_FROM_68, AFLW21_NAMES
from ddfa.eval.aflw2000 import load_aflw2000
from ddfa.eval.protocols import load_crops, regress
from ddfa.morphable.frames import model_to_image
from ddfa.morphable.params import NUM_COEFFICIENTS, join_params
from ddfa.morphable.pose import angles_to_rotation, pose_angles
from ddfa.render import visibility as vis

#: (21, 68) the AFLW points as means of landmarks
AFLW21_WEIGHTS = np.zeros((21, 68))
for _row, _ids in enumerate(AFLW21_FROM_68):
    AFLW21_WEIGHTS[_row, list(_ids)] = 1.0 / len(_ids)
#: AFLW points on the image's left of a frontal face (their mirror partners are on the right)
AFLW21_LEFT = np.array([0, 1, 2, 6, 7, 8, 12, 13, 17])
AFLW21_MIDLINE = np.array([14, 18, 20])


def posed_mean_face(model, yaw: float) -> np.ndarray:
    """The mean face turned by ``yaw`` degrees, in a 120x120 image frame."""
    pose = np.zeros((3, 4))
    pose[:, :3] = 6e-4 * angles_to_rotation(yaw, 0.0, 0.0)
    pose[:, 3] = [60.0, 60.0, 0.0]
    params = join_params(pose, np.zeros(NUM_COEFFICIENTS))
    return model_to_image(model.vertices(params), np.array([0.0, 0.0, 120.0, 120.0]))


def to_aflw21(visible68: np.ndarray) -> np.ndarray:
    """(..., 68) bool -> (..., 21) bool: an AFLW point is visible when >= half its landmarks are."""
    return np.asarray(visible68, dtype=np.float64) @ AFLW21_WEIGHTS.T >= 0.5 - 1e-9


def physical_checks(frontal: np.ndarray, profile: np.ndarray) -> tuple[int, float, bool]:
    """Landmarks visible seen from the front (of 68), share of the far half hidden at 75 deg yaw;
    whether both pass (>= 64 and >= 70 %)."""
    shown = int(frontal.sum())
    hidden = float((~profile[vis._FAR_LEFT]).mean())
    return shown, hidden, shown >= 64 and hidden >= 0.7


def calibrate(facing: np.ndarray, occluded: np.ndarray, truth: np.ndarray, mean_faces, step: float = 0.02):
    """Coordinate ascent of the agreement over :data:`FACING_GROUPS`' thresholds (on the faces
    given: the development faces); ``mean_faces`` = evidence of the mean face at 0 and 75 deg."""
    groups = {name: (0.0, ids) for name, (_, ids) in vis.FACING_GROUPS.items()}
    grid = np.round(np.arange(-0.6, 0.8 + 1e-9, step), 4)

    def score(candidate):
        thresholds = vis.facing_thresholds(candidate)
        checks = physical_checks(*[(f > thresholds) & ~o for f, o in mean_faces])
        agreement = float((to_aflw21((facing > thresholds) & ~occluded) == truth).mean())
        return agreement if checks[2] else -1.0

    for _ in range(4):
        changed = False
        for name, (current, ids) in groups.items():
            scores = np.array([score({**groups, name: (float(t), ids)}) for t in grid])
            best = grid[scores >= scores.max() - 1e-12]
            value = float(best[np.argmin(np.abs(best))])
            changed |= value != current
            groups[name] = (value, ids)
        if not changed:
            break
    return groups, score(groups)


def analyse(name: str, pred: np.ndarray, truth: np.ndarray, yaw: np.ndarray) -> None:
    """Where ``pred`` (F, 21) disagrees with ``truth``: per AFLW point pair, far and near side,
    by |yaw| bin; 'vis>inv' = predicted visible, marked invisible."""
    far = np.zeros_like(truth)
    far[:, AFLW21_LEFT] = (yaw > 0)[:, None]
    right = np.setdiff1d(np.arange(21), np.concatenate([AFLW21_LEFT, AFLW21_MIDLINE]))
    far[:, right] = (yaw < 0)[:, None]
    bins = ((45, 60), (60, 75), (75, 180))
    print(f"{name}: disagreements by AFLW point (left/right pooled), side and |yaw| bin")
    print("  point                    side  n    marked visible  agreement  vis>inv inv>vis   agreement by bin "
          + " ".join(f"{a}-{b if b < 180 else ''}" for a, b in bins))
    for j in [*AFLW21_LEFT, *AFLW21_MIDLINE]:
        partner = {0: 5, 1: 4, 2: 3, 6: 11, 7: 10, 8: 9, 12: 16, 13: 15, 17: 19}.get(int(j))
        cols = [j] if partner is None else [j, partner]
        for side in ((True, False) if partner is not None else (False,)):
            mask = np.zeros_like(truth)
            mask[:, cols] = True
            mask &= far == side
            t, p = truth[mask], pred[mask]
            by_bin = []
            for a, b in bins:
                m = mask & ((np.abs(yaw) > a) & (np.abs(yaw) <= b))[:, None]
                by_bin.append(f"{(pred[m] == truth[m]).mean():.2f}" if m.any() else "  - ")
            label = AFLW21_NAMES[j].replace("left ", "").replace("left", "")
            print(f"  {label:24s} {'far ' if side else 'near'} {mask.sum():4d} {t.mean():8.2f} {(t == p).mean():14.3f} "
                  f"{(p & ~t).sum():8d} {(~p & t).sum():7d}   " + " ".join(by_bin))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--assets", default="../shared/assets")
    parser.add_argument("--data", default="../shared/data/aflw2000-3d")
    parser.add_argument("--calibrate", action="store_true",
                        help="choose the facing thresholds on the development faces and report them")
    parser.add_argument("--analyse", action="store_true", help="print where the rules disagree with AFLW's marks")
    parser.add_argument("--refine", default="none", choices=("none", "flip", "full"),
                        help="predict with test-time refinement")
    args = parser.parse_args()
    store = ddfa.AssetStore(args.assets)
    data = load_aflw2000(store, args.data)
    ann = np.load(Path(args.data) / "aflw2000_3d_annotations.npz")
    assert [str(n) for n in ann["names"]] == list(data.names)
    marks = ann["pt2d"][:, 0, :21] >= 0
    yaw = ann["yaw_3ddfa"]
    dev_names = {p.name for p in (Path(args.data) / "AFLW2000-full").glob("*.jpg")}
    is_dev = np.array([n in dev_names for n in data.names])
    model = ddfa.load_morphable_model(store, "noneck")
    regressor = ddfa.create_model("mb05", assets=store, precision="f32")
    rows = np.flatnonzero(np.abs(yaw) > 45)
    crops = load_crops(data.crop_dir, [data.names[i] for i in rows])
    if args.refine == "none":
        params = regress(regressor, crops)
    else:
        from ddfa.eval.refine import refined_crop_params

        params = refined_crop_params(regressor, model, crops, args.refine)
    predicted_yaw = pose_angles(params)[:, 0]
    meshes = [model_to_image(model.vertices(params[k]), data.roi_boxes[i]) for k, i in enumerate(rows)]
    truth, dev = marks[rows], is_dev[rows]
    print(f"{len(rows)} faces past 45 deg yaw ({dev.sum()} development, {(~dev).sum()} held out), "
          f"{21 * len(rows)} points, {100 * (~truth).mean():.1f}% marked invisible; predictions: mb05, refine "
          f"{args.refine}")

    vis.landmark_visibility(meshes[0], model)  # compile / load the kernels before timing
    start = time.perf_counter()
    mesh68 = np.stack([vis.landmark_visibility(m, model) for m in meshes])
    ms = 1000 * (time.perf_counter() - start) / len(meshes)
    mean_faces = [vis.landmark_evidence(posed_mean_face(model, y), model) for y in (0.0, 75.0)]
    shown, hidden, _ = physical_checks(*[vis.landmark_visibility(posed_mean_face(model, y), model)
                                         for y in (0.0, 75.0)])

    if args.calibrate:
        evidence = [vis.landmark_evidence(meshes[k], model) for k in np.flatnonzero(dev)]
        facing = np.stack([e[0] for e in evidence])
        occluded = np.stack([e[1] for e in evidence])
        groups, best = calibrate(facing, occluded, truth[dev], mean_faces)
        print(f"facing thresholds chosen on the {dev.sum()} development faces (agreement there {100 * best:.2f}%):")
        for name, (value, _) in groups.items():
            print(f"  {name:18s} {value:+.2f}   (in the module: {vis.FACING_GROUPS[name][0]:+.2f})")

    def agreement(pred21):
        hit = pred21 == truth
        return {"dev": hit[dev].mean(), "held-out": hit[~dev].mean(), "all": hit.mean()}

    mesh = to_aflw21(mesh68)
    crude = to_aflw21(np.stack([vis.crude_visibility(y) for y in predicted_yaw]))
    print(f"mesh (patch normals, radius {vis.NORMAL_RADIUS}, per-landmark facing thresholds; z-buffer window "
          f"{vis.WINDOW}, exact tolerance {vis.EXACT_TOLERANCE}, depth tolerance {vis.DEPTH_TOLERANCE}; "
          f"{ms:.1f} ms per face): " + ", ".join(f"{k} {100 * v:.2f}%" for k, v in agreement(mesh).items()))
    print("crude rule (far half hidden):    " + ", ".join(f"{k} {100 * v:.2f}%" for k, v in agreement(crude).items()))
    print(f"physical checks on the mean face: {shown}/68 visible from the front, {100 * hidden:.0f}% of the far "
          "half hidden at 75 deg yaw")
    if args.analyse:
        analyse("mesh", mesh, truth, yaw[rows])
        analyse("crude rule", crude, truth, yaw[rows])
    return 0


if __name__ == "__main__":
    sys.exit(main())
