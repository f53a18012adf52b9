"""Per-face confidence: the refinement passes' spread, calibrated to a probability.

A refined face (:mod:`ddfa.pipeline.refine`) carries ``uncertainty`` ``u``: how far its passes'
landmarks spread, as a fraction of the face size. Its ``confidence`` is the calibrated
probability that the face's landmarks are good, that is that their NME (68 points, normalised by
``sqrt(w·h)`` of the landmark box, AFLW2000-3D's measure) is below :data:`GOOD_NME`:

    confidence = 1 / (1 + exp(-(a + b·ln u)))

with ``(a, b)`` per refinement mode (:data:`CALIBRATION`), fitted by maximum likelihood by
``experiments/refine_photos.py`` on the faces found in the 1700 AFLW2000-3D *development photos*
(FaceBoxes, landmark crop policy and refinement, end to end; 92% of them are good), never on
the AFLW2000-3D crops benchmark. Two-fold cross-validated, the predicted share of good faces
per confidence quintile is within 2 points of the observed one. The confidence is 0.5 at an
uncertainty of 2.2% ("full") or 1.8% ("flip") of the face size, and 0.9 at 1.3% or 1.0%. Spearman
correlation with the error and the NME of the least confident 10% against the rest are in the
README. The calibration holds for the pipeline it was fitted on; other detectors, crop policies
or image sources shift it.
"""

from __future__ import annotations

import numpy as np

from ..errors import InputError

#: a face is "good" when its NME is below this fraction
GOOD_NME = 0.05
#: ``(a, b)`` of the logistic map from ln(uncertainty) to confidence, per refinement mode
CALIBRATION: dict[str, tuple[float, float]] = {
    "flip": (-14.4816, -3.5916),
    "full": (-16.2372, -4.2476),
}


def confidence_from_uncertainty(uncertainty, mode: str) -> np.ndarray:
    """(K,) uncertainties of faces refined with ``mode`` -> (K,) float64 confidence in [0, 1]."""
    if mode not in CALIBRATION:
        raise InputError(f"no confidence calibration for refine={mode!r}; expected one of {sorted(CALIBRATION)}")
    a, b = CALIBRATION[mode]
    u = np.clip(np.asarray(uncertainty, dtype=np.float64), 1e-6, None)
    return 1.0 / (1.0 + np.exp(-(a + b * np.log(u))))
