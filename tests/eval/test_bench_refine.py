"""Test-time refinement in the AFLW2000-3D benchmark (``ddfa benchmark aflw2000-3d --refine``)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from ddfa.pipeline.refine import REFINE_TRANSFORMS


def test_refinement_lowers_the_error_on_aflw2000_crops(assets_dir, aflw2000_dir, mb05, noneck_model):
    """On 150 AFLW2000-3D crops (a slice, the protocol's v1 frame, original annotation), both
    refinements beat the plain pass (plain is the first pass of each, so this is their benefit)."""
    from ddfa.eval.aflw2000 import aflw2000_nme, load_aflw2000
    from ddfa.eval.protocols import load_crops
    from ddfa.eval.refine import plain_and_refined

    full = load_aflw2000(assets_dir, aflw2000_dir)
    rows = np.arange(0, 2000, 2000 // 150)[:150]
    data = replace(full, names=[full.names[i] for i in rows], rows=full.rows[rows], roi_boxes=full.roi_boxes[rows],
                   landmarks={k: v[rows] for k, v in full.landmarks.items()},
                   yaw={k: v[rows] for k, v in full.yaw.items()})
    crops = load_crops(data.crop_dir, data.names)
    errors = {}
    for mode in ("flip", "full"):
        run = plain_and_refined(mb05, noneck_model, crops, mode)
        errors["plain"] = aflw2000_nme(run["plain"], data, noneck_model)["ori"].mean()
        errors[mode] = aflw2000_nme(run["refined"], data, noneck_model)["ori"].mean()
        assert run["passes"] == len(REFINE_TRANSFORMS[mode]) and run["ms_per_face"]["refined"] > 0
    print({k: round(100 * v, 4) for k, v in errors.items()})
    assert errors["flip"] < errors["plain"] and errors["full"] < errors["plain"], errors


