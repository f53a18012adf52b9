"""The 3D morphable model: parameter layout, whitening, reconstruction, frames and pose."""

from .frames import CROP_SIZE, crop_to_image, image_to_crop, model_to_crop, model_to_image, v2_depth
from .model import MorphableModel, load_morphable_model
from .params import NUM_PARAMS, Whitening, load_whitening, split_params
from .pose import angles_to_rotation, decompose_pose, pose_angles, rotation_to_angles, v2_angles

__all__ = [
    "CROP_SIZE",
    "MorphableModel",
    "NUM_PARAMS",
    "Whitening",
    "angles_to_rotation",
    "crop_to_image",
    "decompose_pose",
    "image_to_crop",
    "load_morphable_model",
    "load_whitening",
    "model_to_crop",
    "model_to_image",
    "pose_angles",
    "rotation_to_angles",
    "split_params",
    "v2_angles",
    "v2_depth",
]
