"""The baselines slimkit is measured against, each at its best known settings (ANCHORS.md)."""

from __future__ import annotations

from pathlib import Path

from torch import nn

from slimkit.batch import as_args, inputs_of
from slimkit.deploy import export


def ort_quantize_static(model: nn.Module, example, calib: list, out_dir: Path) -> Path:
    """ONNX Runtime's own int8: dynamo export → quant_pre_process → quantize_static in QDQ
    format, per-channel int8 weights, uint8 activations (u8s8; s8s8 was 1.6–3.3× slower)."""
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process


    out_dir.mkdir(parents=True, exist_ok=True)
    fp32, pre, out = out_dir / "anchor_fp32.onnx", out_dir / "anchor_pre.onnx", \
        out_dir / "ort_quantize_static.onnx"
    export(model, example, fp32, target=None)
    quant_pre_process(str(fp32), str(pre))
    batches = [inputs_of(b) for b in calib]  # the data contract (slimkit.batch)

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            import onnxruntime as ort

            names = [i.name for i in ort.InferenceSession(
                str(pre), providers=["CPUExecutionProvider"]).get_inputs()]
            self.it = iter([dict(zip(names, _arrays(b), strict=True)) for b in batches])

        def get_next(self):
            return next(self.it, None)

    quantize_static(str(pre), str(out), Reader(), quant_format=QuantFormat.QDQ,
                    per_channel=True, activation_type=QuantType.QUInt8,
                    weight_type=QuantType.QInt8)
    return out


def _arrays(inputs) -> tuple:
    return tuple(t.numpy() for t in as_args(inputs))


def openvino_nncf(model: nn.Module, example, calib: list, out_dir: Path,
                  transformer: bool = False) -> Path:
    """OpenVINO + NNCF int8 at its best known settings: the float model converted by
    OpenVINO itself (ov.convert_model on the torch module; through an ONNX file NNCF could
    not see the depthwise weights as constants and left them fp32), `nncf.quantize` with the
    calibration inputs (transformer mode for transformers). Compile it with one stream and
    the LATENCY hint (slimkit.deploy.runtimes.openvino_config). Returns the IR's .xml."""
    import nncf
    import openvino as ov
    import torch

    out_dir.mkdir(parents=True, exist_ok=True)
    args = as_args(example)
    with torch.no_grad():
        ov_model = ov.convert_model(model.eval(), example_input=args if len(args) > 1
                                    else args[0])
    batches = [inputs_of(b) for b in calib]
    data = nncf.Dataset([_feed(b) for b in batches])
    kw = {"model_type": nncf.ModelType.TRANSFORMER} if transformer else {}
    q = nncf.quantize(ov_model, data, subset_size=len(batches), **kw)
    out = out_dir / "openvino_nncf.xml"
    ov.save_model(q, str(out))
    return out


def _feed(batch):
    arrays = _arrays(batch)
    return arrays if len(arrays) > 1 else arrays[0]
