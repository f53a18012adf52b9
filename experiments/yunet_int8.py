"""Static int8 quantisation of the YuNet detector on OpenVINO: speed and agreement with float32.

Quantises ``yunet_s_dynamic.onnx`` with onnxruntime's static quantiser (QDQ format, activations
uint8, weights int8) in several variants and, on OpenVINO, times each against the float32 and
bfloat16 networks at the default pipeline's 720p input (uint8 NHWC 1 x 384 x 640 x 3 in, the
conversion inside the compiled graph, as ``ddfa`` runs it), interleaved, medians.

**Calibration data.** Only the 1700 development photos (``AFLW2000-full``): ``--calib`` photos
drawn with ``numpy.random.default_rng(--seed)`` from the sorted list *after its first 300* (so
that the end-to-end checks on the first 300 photos, ``bench_pipeline.py --photos 300``, see no
calibration photo). Each calibration input is a 640 x 384 frame as the default pipeline's
whole-frame pass makes of a 720p frame: two photos scaled to 320 x 320 side by side (faces of
about 100-200 px), zero-padded at the bottom as :func:`ddfa.detect.scale.pass_inputs` pads.

**Variants** (``--variants``, each ``<float>-<weights>[-conv]``): which nodes stay in float32
(``all``: none; ``first``: the first convolution, which sees the raw 0-255 pixels; ``heads``: the
24 output convolutions of the cls/obj/bbox/kps heads and everything after them, so that the box
offsets and points are not rounded to uint8 steps; joined by ``+``), per-channel (``pc``) or
per-tensor (``pt``) weights, and with ``-conv`` only the convolutions quantised (no
quantize-dequantize pairs around pooling, resize, concat and reshape), with ``-u8in`` the uint8
frame fed straight into the first DequantizeLinear (no conversion to float). Each int8 graph is compiled
with the f32 hint (what is not quantised runs in f32) and with the bf16 hint (the rest in bf16).

With ``--onnxruntime`` the same graphs are timed on onnxruntime too (its own int8 kernels); with
``--profile`` OpenVINO's per-layer times (``PERF_COUNT``) are printed per layer type and kernel.

**Agreement** (``--check N``): the detector (YuNet's decoding, NMS, the 0.3 threshold) on the
first N development photos with each variant against OpenVINO float32: faces found by one but
not the other (IoU < 0.5), the mean and worst box IoU of matched faces, the worst 5-point
deviation (pixels) and the largest score change.

Usage::

    python experiments/yunet_int8.py --assets ../shared/assets --data ../shared/data/aflw2000-3d \
        [--calib 32] [--seed 13] [--rounds 12] [--block 10] [--check 300] [--threads N] [--onnxruntime] [--profile]
        [--variants all-pc first-pc ...] [--out .cache/yunet_int8]
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import time
from pathlib import Path

import cv2
import numpy as np

import ddfa
from ddfa.detect.yunet import MODEL, YuNetDetector
from ddfa.nets.openvino_backend import InputConversion, OpenVinoRunner

HEAD_FIRST = "Conv_54"  # the first of the 24 head convolutions (cls/obj/bbox/kps x strides 8/16/32)


def calibration_frames(data: Path, count: int, seed: int) -> np.ndarray:
    """(count, 384, 640, 3) uint8 BGR frames: photos 300.. of the sorted development set, drawn
    with the seed, two per frame at 320 x 320, zero-padded to 384 rows."""
    photos = sorted((data / "AFLW2000-full").glob("*.jpg"))[300:]
    chosen = np.random.default_rng(seed).choice(len(photos), size=2 * count, replace=False)
    frames = np.zeros((count, 384, 640, 3), np.uint8)
    for i in range(count):
        for j in range(2):
            image = cv2.imread(str(photos[chosen[2 * i + j]]))
            frames[i, :320, 320 * j:320 * (j + 1)] = cv2.resize(image, (320, 320), interpolation=cv2.INTER_AREA)
    return frames


def float_nodes(model, keep: set[str]) -> list[str]:
    """Names of the nodes to leave in float32 for the keep-set (``first``, ``heads``)."""
    nodes = list(model.graph.node)
    convs = [n for n in nodes if n.op_type == "Conv"]
    out = []
    if "first" in keep:
        out.append(convs[0].name)
    if "heads" in keep:
        start = next(i for i, n in enumerate(nodes) if n.name == HEAD_FIRST)
        out += [n.name for n in nodes[start:]]
    return out


def quantise(source: Path, target: Path, frames: np.ndarray, keep: set[str], per_channel: bool,
             conv_only: bool = False) -> float:
    """Write the QDQ int8 graph of ``source`` to ``target``; seconds taken. ``conv_only``: only
    the convolutions get quantize-dequantize pairs (not the pooling, resize, concat, reshape)."""
    import onnx
    import onnx.version_converter
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    # the graph is opset 11, whose DequantizeLinear has no axis (per-channel scales need opset 13)
    model = onnx.version_converter.convert_version(onnx.load(str(source)), 13)
    upgraded = target.with_suffix(".opset13.onnx")
    onnx.save(model, str(upgraded))

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.items = iter([{"input": frames[i:i + 8].transpose(0, 3, 1, 2).astype(np.float32)}
                               for i in range(0, len(frames), 8)])

        def get_next(self):
            return next(self.items, None)

    start = time.perf_counter()
    logging.getLogger().setLevel(logging.ERROR)
    quantize_static(str(upgraded), str(target), Reader(), quant_format=QuantFormat.QDQ, per_channel=per_channel,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                    nodes_to_exclude=float_nodes(model, keep), op_types_to_quantize=["Conv"] if conv_only else None)
    upgraded.unlink()
    return time.perf_counter() - start


def uint8_input(path: Path, target: Path) -> None:
    """The int8 graph with a uint8 input fed straight into the first DequantizeLinear (its input
    QuantizeLinear removed: calibration gives it scale 1, zero point 0, so nothing changes)."""
    import onnx

    model = onnx.load(str(path))
    graph = model.graph
    name = graph.input[0].name
    quant = next(n for n in graph.node if n.op_type == "QuantizeLinear" and n.input[0] == name)
    for node in graph.node:
        for i, value in enumerate(node.input):
            if value == quant.output[0]:
                node.input[i] = name
    graph.node.remove(quant)
    graph.input[0].type.tensor_type.elem_type = onnx.TensorProto.UINT8
    onnx.save(model, str(target))


class Uint8Runner:
    """OpenVINO runner of a uint8-input graph: (N, H, W, 3) uint8 in, only the transpose to NCHW
    in the compiled graph (no conversion to float). One compiled model per shape."""

    takes_uint8 = True

    def __init__(self, path: Path, hint: str, threads: int | None):
        import openvino as ov

        self.ov, self.core, self.path, self.compiled = ov, ov.Core(), path, {}
        self.config = {"INFERENCE_PRECISION_HINT": hint, "PERFORMANCE_HINT": "LATENCY", "NUM_STREAMS": "1",
                       "ENABLE_CPU_PINNING": False, **({"INFERENCE_NUM_THREADS": threads} if threads else {})}
        self.output_names = [o.get_any_name() for o in self.core.read_model(str(path)).outputs]

    def __call__(self, x: np.ndarray) -> list[np.ndarray]:
        from openvino.preprocess import PrePostProcessor

        ov = self.ov
        if x.shape not in self.compiled:
            model = self.core.read_model(str(self.path))
            n, h, w, c = x.shape
            model.reshape({model.inputs[0].get_any_name(): ov.PartialShape([n, c, h, w])})
            ppp = PrePostProcessor(model)
            ppp.input().tensor().set_element_type(ov.Type.u8).set_layout(ov.Layout("NHWC"))
            ppp.input().model().set_layout(ov.Layout("NCHW"))
            compiled = self.core.compile_model(ppp.build(), "CPU", self.config)
            self.compiled[x.shape] = (compiled.create_infer_request(), len(compiled.outputs))
        request, count = self.compiled[x.shape]
        result = request.infer({0: np.ascontiguousarray(x)})
        return [np.asarray(result[i]) for i in range(count)]


def iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(K, 4) x (M, 4) boxes -> (K, M) IoU."""
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=2)
    area = lambda x: np.prod(x[:, 2:] - x[:, :2], axis=1)
    return inter / (area(a)[:, None] + area(b)[None, :] - inter)


def agreement(reference: list, other: list) -> dict[str, float]:
    """Faces missed/extra (IoU < 0.5) and matched-face deviations of ``other`` vs ``reference``."""
    missed = extra = 0
    ious, points, scores = [], [], []
    for ref, det in zip(reference, other):
        if not len(ref.boxes) or not len(det.boxes):
            missed += len(ref.boxes)
            extra += len(det.boxes)
            continue
        m = iou(ref.boxes, det.boxes)
        best = m.argmax(1)
        ok = m[np.arange(len(ref.boxes)), best] >= 0.5
        missed += int((~ok).sum())
        extra += len(det.boxes) - len(set(best[ok].tolist()))
        for i in np.flatnonzero(ok):
            j = best[i]
            ious.append(m[i, j])
            points.append(np.abs(ref.keypoints[i] - det.keypoints[j]).max())
            scores.append(abs(ref.scores[i] - det.scores[j]))
    return {"faces": sum(len(r.boxes) for r in reference), "missed": missed, "extra": extra,
            "mean_iou": float(np.mean(ious)), "min_iou": float(np.min(ious)),
            "max_point_px": float(np.max(points)), "max_score": float(np.max(scores))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--assets", default=None)
    parser.add_argument("--data", required=True)
    parser.add_argument("--calib", type=int, default=32, help="calibration frames (2 photos each)")
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--rounds", type=int, default=12)
    parser.add_argument("--block", type=int, default=10)
    parser.add_argument("--check", type=int, default=300, help="agreement on the first N development photos")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--onnxruntime", action="store_true", help="also time the graphs on onnxruntime")
    parser.add_argument("--profile", action="store_true", help="print OpenVINO's per-layer profile")
    parser.add_argument("--variants", nargs="+",
                        default=["all-pc", "first-pc", "first+heads-pc", "heads-pc", "first+heads-pt"])
    parser.add_argument("--out", default=".cache/yunet_int8")
    args = parser.parse_args()

    store = ddfa.AssetStore(args.assets)
    source = store.path(MODEL)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    frames = calibration_frames(Path(args.data), args.calib, args.seed)
    graphs = {}
    for variant in args.variants:
        keep_part, weights, *more = variant.split("-")
        keep = set() if keep_part == "all" else set(keep_part.split("+"))
        base_variant = "-".join([keep_part, weights] + [m for m in more if m != "u8in"])
        target = out / f"yunet-int8-{base_variant}-c{args.calib}-s{args.seed}.onnx"
        if not target.exists():
            seconds = quantise(source, target, frames, keep, weights == "pc", "conv" in more)
            print(f"quantised {base_variant} in {seconds:.1f} s -> {target}")
        if "u8in" in more:
            uint8_input(target, target.with_name(target.stem + "-u8in.onnx"))
            target = target.with_name(target.stem + "-u8in.onnx")
        graphs[variant] = target

    conversion = InputConversion((0.0, 0.0, 0.0))
    runners = {"f32": OpenVinoRunner(str(source), precision="f32", threads=args.threads, uint8_input=conversion),
               "bf16": OpenVinoRunner(str(source), precision="bf16", threads=args.threads, uint8_input=conversion)}
    for variant, path in graphs.items():
        for hint in ("f32", "bf16"):  # precision "int8" compiles with the f32 hint; "bf16" lets the rest run in bf16
            if variant.endswith("-u8in"):
                runners[f"int8 {variant} ({hint})"] = Uint8Runner(path, hint, args.threads)
                continue
            runners[f"int8 {variant} ({hint})"] = OpenVinoRunner(
                str(path), precision="int8" if hint == "f32" else "bf16", threads=args.threads,
                uint8_input=conversion)

    frame = cv2.resize(ddfa.read_image(store.path("3DDFA_V2/examples/inputs/trump_hillary.jpg")), (640, 360),
                       interpolation=cv2.INTER_AREA)
    x = np.zeros((1, 384, 640, 3), np.uint8)
    x[0, :360] = frame
    for runner in runners.values():
        runner(x), runner(x)
    times: dict[str, list[float]] = {name: [] for name in runners}
    names = list(runners)
    for r in range(args.rounds):
        for name in names[r % len(names):] + names[:r % len(names)]:
            runner = runners[name]
            for _ in range(args.block):
                start = time.perf_counter()
                runner(x)
                times[name].append((time.perf_counter() - start) * 1e3)
    load = os.getloadavg()
    print(f"\nYuNet network alone, 1x384x640x3 uint8 in (conversion in the graph), threads {args.threads or 'all'}, "
          f"median of {args.rounds * args.block} interleaved runs, load average {load[0]:.2f} {load[1]:.2f}")
    f32 = statistics.median(times["f32"])
    bf16 = statistics.median(times["bf16"])
    for name, values in times.items():
        med = statistics.median(values)
        print(f"  {name:<32} {med:6.2f} ms   {med / f32:5.2f}x f32   {med / bf16:5.2f}x bf16")

    if args.profile:  # OpenVINO's per-layer times (PERF_COUNT), summed per layer type and kernel
        print("\nper-layer profile (OpenVINO PERF_COUNT, mean of 30 runs, ms per layer type / kernel):")
        for name in ["bf16"] + [n for n in runners if n.startswith("int8") and n.endswith("(f32)")]:
            runner = runners[name]
            if isinstance(runner, OpenVinoRunner):
                runner = OpenVinoRunner(runner._source, precision=runner.precision, threads=args.threads,
                                        uint8_input=conversion)
                runner._config["PERF_COUNT"] = True
                runner(x)
                request = runner._request(tuple(x.shape), None)[1]
            else:
                runner.config["PERF_COUNT"] = True
                runner.compiled.clear()
                runner(x)
                request = runner.compiled[x.shape][0]
            totals: dict[tuple[str, str], float] = {}
            for _ in range(30):
                request.infer({0: x})
                for layer in request.profiling_info:
                    key = (layer.node_type, layer.exec_type)
                    totals[key] = totals.get(key, 0.0) + layer.real_time.total_seconds() * 1e3 / 30
            top = sorted(totals.items(), key=lambda kv: -kv[1])[:8]
            print(f"  {name:<32} sum {sum(totals.values()):.2f}: "
                  + "; ".join(f"{t}/{e} {v:.2f}" for (t, e), v in top))

    if args.onnxruntime:  # the same graphs on onnxruntime (float32 NCHW in): its int8 kernels (VNNI)
        from ddfa.nets.onnx_backend import OnnxRunner

        ort = {"f32": OnnxRunner(str(source), args.threads)}
        ort.update({f"int8 {v}": OnnxRunner(str(p), args.threads) for v, p in graphs.items() if "u8in" not in v})
        xf = np.ascontiguousarray(x.transpose(0, 3, 1, 2), dtype=np.float32)
        ort_times: dict[str, list[float]] = {name: [] for name in ort}
        for runner in ort.values():
            runner(xf), runner(xf)
        for r in range(args.rounds):
            for name in list(ort)[r % len(ort):] + list(ort)[:r % len(ort)]:
                for _ in range(args.block):
                    start = time.perf_counter()
                    ort[name](xf)
                    ort_times[name].append((time.perf_counter() - start) * 1e3)
        base = statistics.median(ort_times["f32"])
        print(f"\nthe same on onnxruntime (1x3x384x640 float32 in), load average {os.getloadavg()[0]:.2f}")
        for name, values in ort_times.items():
            med = statistics.median(values)
            print(f"  {name:<32} {med:6.2f} ms   {med / base:5.2f}x f32   {med / bf16:5.2f}x OpenVINO bf16")

    if args.check:
        photos = sorted((Path(args.data) / "AFLW2000-full").glob("*.jpg"))[:args.check]
        images = [ddfa.read_image(str(p)) for p in photos] + [x[0, :360]]
        detector = YuNetDetector(base_options=ddfa.BaseOptions(assets=store, backend="openvino", precision="f32",
                                                               threads=args.threads))
        detector.runner = runners["f32"]
        reference = [detector.detect(im) for im in images]
        print(f"\nagreement with OpenVINO f32 on the first {args.check} development photos + the 720p frame "
              "(faces above 0.3; matched at IoU >= 0.5):")
        for name, runner in runners.items():
            if name == "f32":
                continue
            detector.runner = runner
            a = agreement(reference, [detector.detect(im) for im in images])
            print(f"  {name:<32} faces {a['faces']}  missed {a['missed']}  extra {a['extra']}  IoU mean "
                  f"{a['mean_iou']:.4f} min {a['min_iou']:.3f}  points max {a['max_point_px']:.2f} px  "
                  f"score max {a['max_score']:.3f}")


if __name__ == "__main__":
    main()
