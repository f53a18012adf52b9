"""int8 regressor (``precision="int8"``, ``--precision int8``): static quantisation, calibrated
on synthetic faces.

The float32 ONNX graph of the regressor is quantised with onnxruntime's static quantiser
(quantize-dequantize format, weights int8 per output channel, activations uint8) and runs in
onnxruntime or OpenVINO (AMX/VNNI int8 units). The first convolution (it sees raw pixels) and the
head after the last convolution (pooling and the fully connected layer whose outputs are the 62
parameters) stay in float32. Activation ranges are
calibrated on :data:`CALIBRATION_FACES` synthetic 120x120 crops of ``ddfa synth`` (seed
:data:`CALIBRATION_SEED`) — never on a benchmark set. The result is cached like every converted
model (keyed on the float32 graph's sha256 and this recipe) and verified before use.

It costs accuracy: ``ddfa benchmark aflw2000-3d --precision int8`` prints how much against
float32 in the same run. It is therefore an explicit choice, never the default.
"""

from __future__ import annotations

import hashlib
import logging
import tempfile
from pathlib import Path

import numpy as np

from ..assets.store import AssetsLike, resolve_assets
from .model_cache import ConvertedModel, converted_model

#: version of the quantisation recipe (bump when its output would change)
INT8_RECIPE = 2
CALIBRATION_SEED = 20240613
CALIBRATION_FACES = 256


def calibration_crops(assets: AssetsLike = None, num: int = CALIBRATION_FACES,
                      seed: int = CALIBRATION_SEED) -> np.ndarray:
    """(num, 120, 120, 3) uint8 BGR synthetic crops (faces ``0..num-1`` of ``ddfa synth --seed``)."""
    from ..morphable.model import load_morphable_model
    from ..morphable.params import load_whitening
    from ..train.synth import synth_sample

    store = resolve_assets(assets)
    model = load_morphable_model(store, "noneck")
    whitening = load_whitening(store, "v2")
    return np.stack([synth_sample(i, seed, model, whitening)[0] for i in range(num)])


def _kept_in_float(model) -> list[str]:
    """Names of the nodes left in float32: the first convolution, and the head: everything after
    the last convolution (pooling, flattening and the fully connected layer, so that the
    features reach it unquantised)."""
    nodes = list(model.graph.node)
    convs = [i for i, n in enumerate(nodes) if n.op_type == "Conv"]
    return [nodes[convs[0]].name] + [n.name for n in nodes[convs[-1] + 1:] if n.op_type != "Relu"]


def quantize_regressor(f32_onnx: bytes, crops: np.ndarray) -> bytes:
    """The int8 (QDQ) graph of a float32 regressor graph, calibrated on ``crops``."""
    import onnx
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    from .registry import preprocess_crops

    model = onnx.load_from_string(f32_onnx)
    input_name = model.graph.input[0].name

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.batches = iter([{input_name: preprocess_crops(crops[i:i + 32])} for i in range(0, len(crops), 32)])

        def get_next(self):
            return next(self.batches, None)

    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # the quantiser logs advice about optional pre-processing passes
    try:
        with tempfile.TemporaryDirectory() as tmp:
            source, target = Path(tmp) / "f32.onnx", Path(tmp) / "int8.onnx"
            source.write_bytes(f32_onnx)
            quantize_static(str(source), str(target), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                            nodes_to_exclude=_kept_in_float(model))
            return target.read_bytes()
    finally:
        root.setLevel(level)


def int8_regressor(f32: ConvertedModel, *, assets: AssetsLike = None, quiet: bool = False) -> ConvertedModel:
    """The cached (or now made) int8 variant of a converted float32 regressor."""
    store = resolve_assets(assets)
    key = hashlib.sha256(f"{f32.sha256}:synth:{CALIBRATION_SEED}:{CALIBRATION_FACES}".encode()).hexdigest()

    def build() -> tuple[bytes, dict]:
        source = f32.data if f32.data is not None else Path(f32.path).read_bytes()  # type: ignore[arg-type]
        data = quantize_regressor(source, calibration_crops(store))
        meta = {**f32.meta, "int8": {"calibration": "ddfa synth", "seed": CALIBRATION_SEED,
                                     "faces": CALIBRATION_FACES, "float_nodes": "first conv; pooling and fc"}}
        return data, meta

    return converted_model("regressor-int8", source_sha256=key, recipe=INT8_RECIPE, cache_dir=store.cache_dir,
                           build=build, quiet=quiet,
                           describe=f"the regressor to int8 (calibrating on {CALIBRATION_FACES} synthetic faces)")


__all__ = ["CALIBRATION_FACES", "CALIBRATION_SEED", "calibration_crops", "int8_regressor", "quantize_regressor"]
