"""Bounds and boxes of point sets (``ddfa.boxes``): exact, whatever the shape and dtype."""

from __future__ import annotations

import numpy as np

from ddfa.boxes import landmark_boxes, point_bounds
from ddfa.morphable import frames


def test_point_bounds_equal_numpy_on_real_meshes(noneck_model, pipeline_golden):
    """A dense mesh of each golden face (38,365 vertices; (B, N, 3) too) and their 68 landmarks."""
    params = pipeline_golden["param"].astype(np.float32)
    dense = noneck_model.vertices(params)  # (B, N, 3) model frame
    for points in (dense, dense[0], dense.astype(np.float64), noneck_model.landmarks(params)):
        lo, hi = point_bounds(points)
        np.testing.assert_array_equal(lo, points.min(axis=-2))
        np.testing.assert_array_equal(hi, points.max(axis=-2))
        assert lo.dtype == points.dtype and lo.shape == points.shape[:-2] + (3,)
    image = frames.model_to_image(noneck_model.landmarks(params), pipeline_golden["roi_box"])
    boxes = landmark_boxes(image)
    np.testing.assert_array_equal(boxes, np.concatenate([image[..., :2].min(-2), image[..., :2].max(-2)], -1))
    assert landmark_boxes(np.array([[3, 4], [1, 9]])).tolist() == [1.0, 4.0, 3.0, 9.0]
    assert landmark_boxes(np.array([[3, 4], [1, 9]])).dtype == np.float32
