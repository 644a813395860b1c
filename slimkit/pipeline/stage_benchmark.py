"""The `benchmark` stage: every kept model of the run (the original, each stage's) on every
runtime and precision available here — torch eager, ONNX Runtime, OpenVINO (fp32, and bf16
on CPUs with bf16 units; its sparse-weight decompression where FC weights are sparse) — and
optional anchors (ONNX Runtime's quantize_static, OpenVINO + NNCF, of the original),
interleaved in one process.

Per batch size it records the fastest acceptable way to run the final model and why (a
variant whose outputs drift from its reference's is refused: bench/choose.py), the machine,
and where the time goes: each layer's time in the original and in the final model on that
runtime (the runtime's own profiler, bench/profile.py). The choice also goes into the final
artifact's record (`note_deployment`: a 'deployment' step in its manifest).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import torch
from pydantic import Field
from torch import nn

from slimkit.batch import as_args
from slimkit.bench import Candidate, anchors, benchmark
from slimkit.bench.choose import expand, pick
from slimkit.bench.profile import by_layer, profile_nodes
from slimkit.deploy import export
from slimkit.deploy.layout import optimize_eager
from slimkit.deploy.runtimes import installed
from slimkit.latency.machine import machine_line
from slimkit.pipeline.context import Context, StageResult
from slimkit.pipeline.measurements import example_args
from slimkit.pipeline.recipe import Strict
from slimkit.pipeline.registry import planner, stage
from slimkit.quant.flows import is_quantized, model_numerics
from slimkit.record import record_of


class BenchmarkStage(Strict):
    """Every kept model on every runtime and precision here, interleaved in one process."""

    batch_sizes: list[int] = []
    """Batch sizes timed (default: 1 and the data's batch size)."""
    runtimes: list[Literal["torch", "ort", "openvino"]] = ["torch", "ort", "openvino"]
    """Runtimes tried (one not installed is skipped and named)."""
    precisions: list[Literal["f32", "bf16"]] = ["f32", "bf16"]
    """OpenVINO's float precisions tried (bf16 only on CPUs with bf16 units)."""
    sparse: bool = True
    """Try OpenVINO's sparse-weight decompression where it could pay."""
    rounds: int = Field(8, ge=1)
    """Interleaved rounds."""
    runs_per_round: int = Field(3, ge=1)
    """Timed runs of each candidate per round."""
    models: Literal["all", "final"] = "all"
    """Every stage's kept model, or the last only."""
    anchors: list[Literal["ort_quantize_static", "openvino_nncf"]] = []
    """Baselines made from the original in the same run."""
    layers: int = Field(12, ge=0)
    """Per-layer view: this many slowest layers (0: none)."""
    target: float | None = Field(0.05, gt=0)
    """Rounds go on until every speedup's 95% interval is within ± this share (null: exactly
    `rounds`)."""
    cap_s: float = Field(20.0, gt=0)
    """… or until this many seconds have passed (per batch size); a ratio still wider than
    ±10% is marked noisy and kept out of headline sentences."""


@stage("benchmark", BenchmarkStage, changes_model=False)
def run_benchmark(ctx: Context, model: nn.Module, cfg: BenchmarkStage) -> StageResult:
    out = ctx.run.run_dir / "benchmark"
    out.mkdir(parents=True, exist_ok=True)
    kept = ctx.kept if cfg.models == "all" else ctx.kept[-1:]
    cands, owners, files, skipped = _candidates(ctx, kept, cfg, out)
    info: dict = {"skipped": skipped, "batches": {}, "fastest": {}, "layers": {},
                  "vs_anchor": {}, "rounds": {}, "machine": machine_line(ctx.recipe.threads)}
    numerics = {label: model_numerics(m) for label, m in kept}
    final = kept[-1][0]
    for b in cfg.batch_sizes or sorted({1, ctx.data.batch_size}):
        x = _batch(ctx.data.example, b)
        res = benchmark(cands, x, rounds=cfg.rounds, runs_per_round=cfg.runs_per_round,
                        threads=ctx.recipe.threads, target=cfg.target, cap_s=cfg.cap_s)
        rows = _rows(res, owners, numerics)
        info["batches"][str(b)] = rows
        info["rounds"][str(b)] = {"rounds": res.rounds, "stopped": res.stopped,
                                  "load": res.load, "others": res.others,
                                  "raw_ms": res.raw_ms}
        info["table"] = info.get("table", "") + f"\n{res}\n"
        best = _fastest(res, pick(res, cands), final)
        info["fastest"][str(b)] = best
        anchors = [i for i, r in enumerate(rows) if r["model"].startswith("anchor")
                   and r["error"] is None]
        if anchors:
            a = min(anchors, key=lambda i: rows[i]["median_ms"])
            ratio, lo, hi, noisy = res.interval(best["index"], a)
            info["vs_anchor"][str(b)] = {"anchor": _label(rows[a]),
                                         "anchor_ms": rows[a]["median_ms"], "speedup": ratio,
                                         "ci": [lo, hi], "noisy": noisy}
        if cfg.layers:
            info["layers"][str(b)] = _layer_view(files["original"], files[final], best, x,
                                                 ctx.recipe.threads, cfg.layers)
    note = "; ".join(f"batch {b}: {r['why']}" for b, r in info["fastest"].items())
    return StageResult(model, [], f"fastest for the final model on this machine — {note}",
                       False, info)


def _rows(res, owners: list[tuple[str, str]], numerics: dict[str, str]) -> list[dict]:
    """One dict per measured candidate: which model (and its numerics), on which runtime at
    which float precision, its times and its speedup's interval."""
    out = []
    for (model, runtime), r in zip(owners, res.rows, strict=True):
        out.append({"model": model, "numerics": numerics.get(model, "fp32"),
                    "runtime": runtime, "precision": r.precision,
                    "sparse": r.name.endswith("(sparse)"), "median_ms": r.median_ms,
                    "p90_ms": r.p90_ms, "speedup": r.speedup,
                    "ci": list(r.ci) if r.ci else None, "noisy": r.noisy,
                    "throughput": r.throughput, "size_mb": r.size_mb,
                    "fidelity": r.fidelity, "error": r.error})
        out[-1]["label"] = _label(out[-1])
    return out


def _label(row: dict) -> str:
    """'0:prune (int8) · openvino bf16': every row told apart from every other."""
    rt = row["runtime"] + ("" if row["precision"] == "f32" else f" {row['precision']}")
    sparse = " sparse" if row.get("sparse") else ""
    num = "" if row.get("numerics", "fp32") == "fp32" else f" ({row['numerics']})"
    return f"{row['model']}{num} · {rt}{sparse}"


def _fastest(res, choice: dict[str, dict], final: str) -> dict:
    """The final model's fastest acceptable deployment: its file's best variant or torch
    eager, whichever is faster (the other named in `why`, with the ratio's interval; a noisy
    ratio is not headlined)."""
    options = sorted((dict(c, model=final) for name, c in choice.items()
                      if name in (final, f"{final} · torch")), key=lambda c: c["median_ms"])
    best = options[0]
    if len(options) > 1:
        other = options[1]
        ratio, lo, hi, noisy = res.interval(best["index"], other["index"])
        versus = f"{other['runtime']} ({other['median_ms']:.3g} ms)"
        best["why"] += (f"; {versus}: {lo:.2f}–{hi:.2f}×, noisy" if noisy
                        else f"; {ratio:.2f}× ({lo:.2f}–{hi:.2f}) faster than {versus}")
    return best


def _candidates(ctx: Context, kept, cfg: BenchmarkStage, out: Path):
    """(candidates, (model label, runtime) per candidate, label → exported file, skipped)."""
    cands, owners, files, skipped = [], [], {}, []
    file_rts = tuple(r for r in cfg.runtimes if r != "torch")
    for i, (label, m) in enumerate(kept):
        files[label] = export(m, example_args(ctx.data.example), out / f"m{i}.onnx")
        if "torch" in cfg.runtimes and not is_quantized(m):  # eager runs a simulation
            cands.append(Candidate(f"{label} · torch", optimize_eager(m)))
            owners.append((label, "torch"))
        more, skipped = expand([Candidate(label, files[label])], file_rts, cfg.precisions,
                               cfg.sparse, offset=len(cands))
        cands += more
        owners += [(label, c.runtime) for c in more]
    if "openvino" in cfg.runtimes and not installed("openvino"):
        skipped = ["openvino: not installed (pip install 'slimkit[openvino]')"]
    if "original" not in files:  # the per-layer view compares the final model with it
        files["original"] = export(ctx.original, example_args(ctx.data.example),
                                   out / "original.onnx")
    for a in cfg.anchors:
        if a == "openvino_nncf" and not _nncf():
            skipped.append("anchor openvino_nncf: nncf or openvino is not installed "
                           "(pip install 'slimkit[bench]')")
            continue
        fn = getattr(anchors, a)
        p = fn(ctx.original, example_args(ctx.data.example), ctx.data.calib, out)
        rt = "ort" if a == "ort_quantize_static" else "openvino"
        cands.append(Candidate(f"anchor {a}", p, rt))
        owners.append((f"anchor {a}", rt))
    return cands, owners, files, skipped


def _nncf() -> bool:
    try:
        import nncf  # noqa: F401
        import openvino  # noqa: F401
    except ImportError:
        return False
    return True


def _layer_view(before: Path, after: Path, best: dict, x, threads: int, top: int) -> dict:
    """Each layer's time in the original and the final model, on the final model's fastest
    runtime (ONNX Runtime when that is torch eager): the `top` slowest of the original, and
    every layer of the final model slower than the slowest of those."""
    rt = best["runtime"] if best["runtime"] in ("ort", "openvino") else "ort"
    prec = best.get("precision", "f32")
    cfg = best.get("config") or None
    xs = as_args(x)
    t0 = dict(by_layer(profile_nodes(before, rt, xs, threads, precision=prec, config=cfg)))
    t1 = dict(by_layer(profile_nodes(after, rt, xs, threads, precision=prec, config=cfg)))
    names = sorted(t0, key=lambda n: -t0[n])[:top]
    rows = [{"layer": n, "before_ms": t0[n], "after_ms": t1.get(n)} for n in names]
    return {"runtime": rt, "precision": prec, "before_total_ms": sum(t0.values()),
            "after_total_ms": sum(t1.values()), "rows": rows,
            "after_only": [{"layer": n, "after_ms": v} for n, v in
                           sorted(t1.items(), key=lambda kv: -kv[1])[:top] if n not in t0]}


def _batch(example, b: int):
    """The example batch cut or tiled to b rows."""
    def fit(t: torch.Tensor) -> torch.Tensor:
        reps = -(-b // t.shape[0])
        return t.repeat(reps, *[1] * (t.dim() - 1))[:b].contiguous()
    args = tuple(fit(t) for t in as_args(example))
    return args if len(args) > 1 else args[0]


def note_deployment(model: nn.Module, results: list[dict]) -> None:
    """Record the last benchmark stage's choice for the final model in its record (an
    info-only 'deployment' step, written into the artifact's manifest by sk.save)."""
    bench = [r for r in results if r["kind"] == "benchmark"]
    if not bench or not bench[-1]["info"].get("fastest"):
        return
    info = bench[-1]["info"]
    fastest = {b: {k: f.get(k) for k in ("runtime", "precision", "sparse", "config",
                                         "median_ms", "why")}
               for b, f in info["fastest"].items()}
    record_of(model).add("deployment", {"fastest": fastest, "machine": info.get("machine")},
                         "fastest runtime on the machine it was benchmarked on")


@planner("benchmark")
def plan_benchmark(ctx: Context, model: nn.Module, cfg: BenchmarkStage):
    have = [r for r in cfg.runtimes if installed(r)]
    return (f"{cfg.models} kept models × {', '.join(have)} at batch "
            f"{cfg.batch_sizes or sorted({1, ctx.data.batch_size})}"), model
