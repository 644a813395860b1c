"""The `export` stage: the model in real runtimes — ONNX (QDQ where quantized) for ONNX
Runtime, OpenVINO IR beside it; the metric is measured again *through each runtime* (the
deployed number), and a quantized model's parity with its simulation is checked. (The
`benchmark` stage is stage_benchmark.py.)"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Literal

from pydantic import Field
from torch import nn

from slimkit.deploy import check_parity, session
from slimkit.deploy.runtimes import installed
from slimkit.pipeline.context import Context, StageResult
from slimkit.pipeline.measurements import RuntimeModule
from slimkit.pipeline.recipe import Strict
from slimkit.pipeline.registry import planner, stage
from slimkit.quant.flows import is_quantized


class ExportStage(Strict):
    """The model in real runtimes, the metric measured through each."""

    runtimes: list[Literal["ort", "openvino"]] = ["ort", "openvino"]
    """ONNX Runtime (the .onnx file, QDQ where quantized) and the OpenVINO IR beside it."""
    opset: int = Field(20, ge=17)
    """ONNX opset."""
    parity: bool = True
    """A quantized model: compare ONNX Runtime's integer run with slimkit's simulation."""
    budget: float | None = Field(None, ge=0)
    """What this stage may lose (default: the recipe's per_stage, else max_drop)."""


@stage("export", ExportStage, changes_model=False)
def run_export(ctx: Context, model: nn.Module, cfg: ExportStage) -> StageResult:
    out = ctx.run.run_dir / "export"
    out.mkdir(parents=True, exist_ok=True)
    onnx_path = ctx.cache.onnx(model, out / "model.onnx", cfg.opset)
    info: dict = {"files": {"onnx": str(onnx_path.relative_to(ctx.run.run_dir))}, "skipped": []}
    attempts = []
    for rt in cfg.runtimes:
        if not installed(rt):
            info["skipped"].append(f"{rt}: not installed (pip install 'slimkit[openvino]')")
            continue
        t0 = time.perf_counter()
        attempts.append(ctx.measure(RuntimeModule(session(onnx_path, rt)), f"{rt} runtime",
                                    cfg, t0, note="the metric measured through the runtime",
                                    of=model))
        if rt == "openvino":
            ir = _openvino_ir(onnx_path, out)
            info["files"]["openvino"] = str(ir.relative_to(ctx.run.run_dir))
    if cfg.parity and is_quantized(model):
        batches = [b for _, b in zip(range(4), ctx.data.val, strict=False)]
        par = check_parity(model, onnx_path, batches, task=ctx.task)
        info["parity"] = {**par.to_dict(), "summary": str(par)}
    kept = "the model goes on unchanged; " + ", ".join(
        f"{a.label}: {ctx.unit} {a.metric:.4g}" for a in attempts)
    return StageResult(model, attempts, kept, False, info)


def _openvino_ir(onnx_path: Path, out: Path) -> Path:
    import openvino as ov

    xml = out / "openvino" / "model.xml"
    xml.parent.mkdir(exist_ok=True)
    ov.save_model(ov.convert_model(str(onnx_path)), str(xml))
    return xml


@planner("export")
def plan_export(ctx: Context, model: nn.Module, cfg: ExportStage):
    have = [r for r in cfg.runtimes if installed(r)]
    return f"ONNX (opset {cfg.opset}) for {', '.join(have)}; metric re-measured in each", model
