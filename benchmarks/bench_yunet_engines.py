"""Which engine runs YuNet fastest here: ``cv2.FaceDetectorYN`` or onnxruntime?

Usage::

    python benchmarks/bench_yunet_engines.py [--assets DIR] [--repeats 30] [--threads 2]

Both run the same weights (OpenCV Zoo's ``face_detection_yunet_2023mar.onnx`` for OpenCV,
libfacedetection.train's ``yunet_s_dynamic.onnx`` for onnxruntime) on the same frames, and both
timings include decoding and NMS:

* ``cv2``: ``cv2.FaceDetectorYN.detect`` (OpenCV's DNN engine, decoding and NMS in C++), input
  size set to the frame's;
* ``ort``: ddfa's ``YuNetDetector.detect`` (onnxruntime, numpy decoding, ddfa's NMS), one
  whole-frame pass at the frame's size (``min_face=None``).

Calls alternate (A/B interleaved) so that the machine's drift hits both alike; printed: median
milliseconds per frame size and the ratio cv2 / ort. The frame is ``trump_hillary.jpg``
resized to each size. ddfa uses onnxruntime because it wins at every size measured (see the
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
    print(f"{'input (w x h)':<16}{'cv2.FaceDetectorYN':>20}{'onnxruntime':>14}{'cv2 / ort':>11}{'faces':>8}")
    for width, height in SIZES:
        frame = cv2.resize(photo, (width, height), interpolation=cv2.INTER_AREA)
        yn = cv2.FaceDetectorYN.create(str(store.path(ZOO_MODEL)), "", (width, height), 0.3, 0.3, 5000)
        ours = YuNetDetector(base_options=ddfa.BaseOptions(assets=store, threads=args.threads),
                             options=YuNetOptions(det_size=max(width, height), min_face=None))
        runs = {"cv2": lambda yn=yn, frame=frame: yn.detect(frame),
                "ort": lambda ours=ours, frame=frame: ours.detect(frame)}
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
        print(f"{f'{width} x {height}':<16}{med['cv2']:>20.2f}{med['ort']:>14.2f}{med['cv2'] / med['ort']:>10.2f}x"
              f"{count:>8}")


if __name__ == "__main__":
    main()
