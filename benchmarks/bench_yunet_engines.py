"""Which engine runs YuNet fastest here: ``cv2.FaceDetectorYN``, onnxruntime or OpenVINO?

Usage::

    python benchmarks/bench_yunet_engines.py [--assets DIR] [--repeats 30] [--threads 2]

All run the same weights (OpenCV Zoo's ``face_detection_yunet_2023mar.onnx`` for OpenCV,
libfacedetection.train's ``yunet_s_dynamic.onnx`` for onnxruntime and OpenVINO) on the same
frames, and all timings include decoding and NMS:

* ``cv2``: ``cv2.FaceDetectorYN.detect`` (OpenCV's DNN engine, decoding and NMS in C++), input
  size set to the frame's;
* ``ort``: ddfa's ``YuNetDetector.detect`` (onnxruntime, numpy decoding, ddfa's NMS), one
  whole-frame pass at the frame's size (``min_face=None``);
* ``ov-f32``, ``ov-bf16``: the same on OpenVINO (uint8 frame converted inside the compiled
  graph), float32 and bfloat16 (when OpenVINO is installed).

Calls alternate (interleaved) so that the machine's drift hits all alike; printed: median
milliseconds per frame size and each engine's ratio to onnxruntime. The frame is
``trump_hillary.jpg`` resized to each size. ``backend="auto"`` picks OpenVINO in bf16 on CPUs
with AMX or AVX-512-BF16, onnxruntime elsewhere; cv2 is slowest at every size measured (see the
README's Speed section).
"""

from __future__ import annotations

import argparse
import statistics
import time

import cv2

import ddfa
from ddfa.detect.yunet import YuNetDetector, YuNetOptions

ZOO_MODEL = "opencv_zoo/models/face_detection_yunet/face_detection_yunet_2023mar.onnx"
SIZES = ((320, 320), (480, 480), (640, 384), (640, 640), (1280, 736))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--assets", default=None)
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    store = ddfa.AssetStore(args.assets)
    cv2.setNumThreads(args.threads)
    photo = ddfa.read_image(store.path("3DDFA_V2/examples/inputs/trump_hillary.jpg"))
    print(f"cv2 {cv2.__version__}, threads {args.threads}, median of {args.repeats} interleaved runs, ms "
          "(decoding and NMS included)")
    engines = {"ort": ("onnxruntime", "f32")}
    if ddfa.nets.engines.openvino_available():
        engines.update({"ov-f32": ("openvino", "f32"), "ov-bf16": ("openvino", "bf16")})
    names = ["cv2", *engines]
    print(f"{'input (w x h)':<16}" + "".join(f"{n:>10}" for n in names) + "".join(f"{n + ' / ort':>14}" for n in names
                                                                                    if n != "ort") + f"{'faces':>8}")
    for width, height in SIZES:
        frame = cv2.resize(photo, (width, height), interpolation=cv2.INTER_AREA)
        yn = cv2.FaceDetectorYN.create(str(store.path(ZOO_MODEL)), "", (width, height), 0.3, 0.3, 5000)
        detectors = {name: YuNetDetector(base_options=ddfa.BaseOptions(assets=store, threads=args.threads,
                                                                       backend=be, precision=pr),  # type: ignore[arg-type]
                                         options=YuNetOptions(det_size=max(width, height), min_face=None))
                     for name, (be, pr) in engines.items()}
        ours = detectors["ort"]
        runs = {"cv2": lambda yn=yn, frame=frame: yn.detect(frame),
                **{name: (lambda d=d, frame=frame: d.detect(frame)) for name, d in detectors.items()}}
        times: dict[str, list[float]] = {name: [] for name in runs}
        for fn in runs.values():  # warm-up
            fn()
        for _ in range(args.repeats):
            for name, fn in runs.items():
                start = time.perf_counter()
                fn()
                times[name].append((time.perf_counter() - start) * 1e3)
        med = {name: statistics.median(t) for name, t in times.items()}
        faces_cv = yn.detect(frame)[1]
        count = f"{0 if faces_cv is None else len(faces_cv)}/{len(ours.detect(frame))}"
        print(f"{f'{width} x {height}':<16}" + "".join(f"{med[n]:>10.2f}" for n in names)
              + "".join(f"{med[n] / med['ort']:>13.2f}x" for n in names if n != "ort") + f"{count:>8}")


if __name__ == "__main__":
    main()
