"""The `export` and `benchmark` stages: the model in real runtimes, measured.

export     ONNX (QDQ where quantized) for ONNX Runtime, OpenVINO IR beside it; the metric is
           measured again *through each runtime* (the deployed number), and a quantized model's
           parity with its simulation is checked.
benchmark  every kept model of the run (the original, each stage's) on every runtime available
           here — torch eager, ONNX Runtime, OpenVINO — and optional anchors (ONNX Runtime's own
           quantize_static of the original), interleaved in one process; the fastest is named.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from pydantic import Field
from torch import nn

from slimkit.pipeline.context import Context, StageResult, example_args
from slimkit.pipeline.recipe import Strict
from slimkit.pipeline.stages import planner, stage
from slimkit.quant.modules import QuantLayer


class RuntimeModule(nn.Module):
    """A runtime session as a module, so the recipe's metric can measure it."""

    def __init__(self, sess) -> None:
        super().__init__()
        self.sess = sess

    def forward(self, *args, **kwargs) -> torch.Tensor:
        xs = tuple(a.numpy() for a in (*args, *kwargs.values()))
        return torch.from_numpy(np.asarray(self.sess.run(xs)))


def available(runtime: str) -> bool:
    if runtime in ("torch", "ort"):
        return True
    try:
        import openvino  # noqa: F401
    except ImportError:
        return False
    return True


def is_quantized(model: nn.Module) -> bool:
    return any(isinstance(m, QuantLayer) for m in model.modules())


class ExportStage(Strict):
    runtimes: list[Literal["ort", "openvino"]] = ["ort", "openvino"]
    opset: int = Field(20, ge=17)
    parity: bool = True
    budget: float | None = Field(None, ge=0)


@stage("export", ExportStage, changes_model=False)
def run_export(ctx: Context, model: nn.Module, cfg: ExportStage) -> StageResult:
    from slimkit.deploy import check_parity, export, session

    out = ctx.run_dir / "export"
    out.mkdir(parents=True, exist_ok=True)
    onnx_path = export(model, example_args(ctx.data.example), out / "model.onnx",
                       opset=cfg.opset)
    info: dict = {"files": {"onnx": str(onnx_path.relative_to(ctx.run_dir))}, "skipped": []}
    attempts = []
    for rt in cfg.runtimes:
        if not available(rt):
            info["skipped"].append(f"{rt}: not installed (pip install 'slimkit[openvino]')")
            continue
        t0 = time.perf_counter()
        attempts.append(ctx.measure(RuntimeModule(session(onnx_path, rt)), f"{rt} runtime",
                                    cfg, t0, note="the metric measured through the runtime"))
        if rt == "openvino":
            info["files"]["openvino"] = str(_openvino_ir(onnx_path, out).relative_to(ctx.run_dir))
    if cfg.parity and is_quantized(model):
        batches = [b for _, b in zip(range(4), ctx.data.val, strict=False)]
        xs = [b[0] if isinstance(b, tuple | list) else b for b in batches]
        if all(isinstance(x, torch.Tensor) for x in xs):
            info["parity"] = check_parity(model, onnx_path, xs).to_dict()
    kept = "the model goes on unchanged; " + ", ".join(
        f"{a.label}: {ctx.unit} {a.metric:.4g}" for a in attempts)
    return StageResult(model, attempts, kept, False, info)


def _openvino_ir(onnx_path: Path, out: Path) -> Path:
    import openvino as ov

    xml = out / "openvino" / "model.xml"
    xml.parent.mkdir(exist_ok=True)
    ov.save_model(ov.convert_model(str(onnx_path)), str(xml))
    return xml


class BenchmarkStage(Strict):
    batch_sizes: list[int] = []  # default: 1 and the data's batch size
    runtimes: list[Literal["torch", "ort", "openvino"]] = ["torch", "ort", "openvino"]
    rounds: int = Field(8, ge=1)
    runs_per_round: int = Field(3, ge=1)
    models: Literal["all", "final"] = "all"  # every stage's kept model, or the last only
    anchors: list[Literal["ort_quantize_static"]] = []


@stage("benchmark", BenchmarkStage, changes_model=False)
def run_benchmark(ctx: Context, model: nn.Module, cfg: BenchmarkStage) -> StageResult:
    from slimkit.bench import Candidate, anchors, benchmark
    from slimkit.deploy import export
    from slimkit.deploy.layout import optimize_eager

    out = ctx.run_dir / "benchmark"
    out.mkdir(parents=True, exist_ok=True)
    kept = ctx.kept if cfg.models == "all" else ctx.kept[-1:]
    runtimes = [r for r in cfg.runtimes if available(r)]
    info: dict = {"skipped": [f"{r}: not installed" for r in cfg.runtimes if r not in runtimes],
                  "batches": {}, "fastest": {}}
    cands, owners = [], []
    for i, (label, m) in enumerate(kept):
        path = export(m, example_args(ctx.data.example), out / f"m{i}.onnx")
        for rt in runtimes:
            if rt == "torch" and is_quantized(m):
                continue  # eager runs the simulation, not a deployment path
            target = optimize_eager(m) if rt == "torch" else path
            cands.append(Candidate(f"{label} · {rt}", target, None if rt == "torch" else rt))
            owners.append((label, rt))
    for a in cfg.anchors:
        p = anchors.ort_quantize_static(ctx.original, example_args(ctx.data.example),
                                        ctx.data.calib, out)
        cands.append(Candidate("anchor: ORT quantize_static", p, "ort"))
        owners.append((f"anchor {a}", "ort"))
    for b in cfg.batch_sizes or sorted({1, ctx.data.batch_size}):
        x = _batch(ctx.data.example, b)
        res = benchmark(cands, x, rounds=cfg.rounds, runs_per_round=cfg.runs_per_round,
                        threads=ctx.recipe.threads)
        rows = [{"model": o[0], "runtime": o[1], "median_ms": r.median_ms, "p90_ms": r.p90_ms,
                 "speedup": r.speedup, "throughput": r.throughput, "size_mb": r.size_mb}
                for o, r in zip(owners, res.rows, strict=True)]
        info["batches"][str(b)] = rows
        info["table"] = info.get("table", "") + f"\n{res}\n"
        final = [r for r in rows if r["model"] == kept[-1][0]]
        best = min(final or rows, key=lambda r: r["median_ms"])
        info["fastest"][str(b)] = best
    note = "; ".join(f"batch {b}: {r['runtime']} ({r['median_ms']:.3g} ms)"
                     for b, r in info["fastest"].items())
    return StageResult(model, [], f"fastest for the final model on this machine — {note}",
                       False, info)


def _batch(example, b: int):
    """The example batch cut or tiled to b rows."""
    def fit(t: torch.Tensor) -> torch.Tensor:
        reps = -(-b // t.shape[0])
        return t.repeat(reps, *[1] * (t.dim() - 1))[:b].contiguous()
    if isinstance(example, dict):
        return tuple(fit(v) for v in example.values())
    return fit(example)


@planner("export")
def plan_export(ctx: Context, model: nn.Module, cfg: ExportStage):
    have = [r for r in cfg.runtimes if available(r)]
    return f"ONNX (opset {cfg.opset}) for {', '.join(have)}; metric re-measured in each", model


@planner("benchmark")
def plan_benchmark(ctx: Context, model: nn.Module, cfg: BenchmarkStage):
    have = [r for r in cfg.runtimes if available(r)]
    return (f"{cfg.models} kept models × {', '.join(have)} at batch "
            f"{cfg.batch_sizes or sorted({1, ctx.data.batch_size})}"), model
