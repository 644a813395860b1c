"""Pick the fastest way to run a model file on this machine, and say why.

`expand` turns each model file into one candidate per runtime and precision available here:
ONNX Runtime; OpenVINO with fp32 float ops; OpenVINO with bf16 float ops where the CPU has
bf16 units (AMX-BF16 / AVX512-BF16 — OpenVINO would pick bf16 there on its own, slimkit asks
explicitly); OpenVINO's sparse-weight decompression where the file's int8 fully-connected
weights are sparse enough for it to pay (`sparse_variant`). Every variant keeps the first
one as its reference: `pick` accepts a variant only when its outputs match the reference's on
the benchmark inputs (cosine ≥ COSINE_FLOOR, top-1 agreement ≥ TOP1_FLOOR for classifier
outputs), so a faster bf16 run that changes answers is named and refused.
"""

from __future__ import annotations

from pathlib import Path

from slimkit.deploy.emulate import int8_weights
from slimkit.deploy.runtimes import installed
from slimkit.latency.machine import machine_line
from slimkit.latency.measure import Candidate, agreement
from slimkit.target import detect

COSINE_FLOOR = 0.999
TOP1_FLOOR = 0.99
BF16_FEATURES = frozenset({"amx_bf16", "avx512_bf16"})
SPARSE_RATE = 0.5  # OpenVINO decompresses int8 FC weights with at least this share of zeros


def has_bf16() -> bool:
    return bool(BF16_FEATURES & detect().features)


def expand(cands: list[Candidate], runtimes=("ort", "openvino"), precisions=("f32", "bf16"),
           sparse: bool = True, offset: int = 0) -> tuple[list[Candidate], list[str]]:
    """(every runtime / precision variant of each model file, the runtimes skipped here).
    Each variant's `reference` is its model's first variant (indices start at `offset`:
    where these candidates will sit in a longer list)."""
    out: list[Candidate] = []
    skipped: list[str] = []
    ov = "openvino" in runtimes and installed("openvino")
    if "openvino" in runtimes and not ov:
        skipped.append("openvino: not installed (pip install 'slimkit[openvino]')")
    for c in cands:
        if not isinstance(c.model, str | Path):
            out.append(c)
            continue
        ref = len(out)

        def add(name, path, rt, precision="f32", config=None, ref=ref):
            out.append(Candidate(name, path, rt, precision, config,
                                 None if len(out) == ref else ref + offset))
        path = Path(c.model)
        if path.suffix == ".onnx" and "ort" in runtimes:
            add(c.name, path, "ort")
        if ov:
            add(c.name, path, "openvino")
            if has_bf16() and "bf16" in precisions:
                add(c.name, path, "openvino", "bf16")
            config = sparse_variant(path) if sparse else None
            if config is not None:
                add(f"{c.name} (sparse)", path, "openvino", "f32", config)
    return out, skipped


def sparse_variant(path: Path) -> dict | None:
    """OpenVINO's sparse-weight decompression for int8 fully-connected layers (AMX CPUs):
    the plugin property at the file's sparsest FC weights' level, or None when no int8
    MatMul / Gemm weight reaches SPARSE_RATE zeros (or the property does not exist here)."""
    if path.suffix != ".onnx" or not has_property("CPU_SPARSE_WEIGHTS_DECOMPRESSION_RATE"):
        return None
    import onnx


    zeros = [float((rows == 0).mean()) for _, op, rows in
             int8_weights(onnx.load(str(path))) if op in ("Gemm", "MatMul")]
    if not zeros or max(zeros) < SPARSE_RATE:
        return None
    return {"CPU_SPARSE_WEIGHTS_DECOMPRESSION_RATE": SPARSE_RATE}


def has_property(name: str) -> bool:
    try:
        import openvino as ov
    except ImportError:
        return False
    return name in ov.Core().get_property("CPU", "SUPPORTED_PROPERTIES")


def acceptable(fid: dict | None) -> bool:
    if fid is None:
        return True
    return fid["cosine"] >= COSINE_FLOOR and (fid["top1"] is None or fid["top1"] >= TOP1_FLOOR)


def label(row) -> str:
    return row.runtime if row.precision == "f32" else f"{row.runtime} {row.precision}"


def pick(res, cands: list[Candidate]) -> dict[str, dict]:
    """Per model (the variants sharing a reference): the fastest acceptable variant, with the
    machine and a sentence saying why."""

    groups: dict[int, list[int]] = {}
    for i, c in enumerate(cands):
        groups.setdefault(i if c.reference is None else c.reference, []).append(i)
    return {cands[ref].name: _choice(res, cands, ref, members)
            for ref, members in groups.items()}


def _choice(res, cands: list[Candidate], ref: int, members: list[int]) -> dict:
    rows = [res.rows[i] for i in members]
    ok = [r for r in rows if r.error is None and acceptable(r.fidelity)]
    best = min(ok, key=lambda r: r.median_ms)
    others = sorted((r for r in ok if r is not best), key=lambda r: r.median_ms)
    why = f"{cands[ref].name}: {label(best)}{_sparse(best)} {best.median_ms:.3g} ms"
    if others:
        nxt = others[0]
        ratio, lo, hi, noisy = res.interval(res.rows.index(best), res.rows.index(nxt))
        versus = f"{label(nxt)}{_sparse(nxt)} ({nxt.median_ms:.3g} ms)"
        why += (f"; {versus}: the ratio {lo:.2f}–{hi:.2f}× is noisy, no headline" if noisy
                else f", {ratio:.2f}× ({lo:.2f}–{hi:.2f}) faster than {versus}")
    if best.fidelity:
        why += (f"; outputs vs {label(rows[0])}: cosine {best.fidelity['cosine']:.5f}"
                + (f", top-1 agreement {100 * best.fidelity['top1']:.1f}%"
                   if best.fidelity["top1"] is not None else ""))
    refused = [r for r in rows if r not in ok]
    if refused:
        why += "; refused (outputs differ): " + ", ".join(
            f"{label(r)} (cosine {r.fidelity['cosine']:.4f})" for r in refused)
    i = members[rows.index(best)]
    return {"index": i, "runtime": best.runtime, "precision": best.precision,
            "sparse": _sparse(best) != "",
            "config": cands[i].config, "median_ms": best.median_ms, "fidelity": best.fidelity,
            "why": why, "machine": machine_line(res.threads)}


def _sparse(row) -> str:
    return " sparse" if row.name.endswith("(sparse)") else ""


__all__ = ["COSINE_FLOOR", "TOP1_FLOOR", "acceptable", "agreement", "expand", "has_bf16",
           "has_property", "installed", "pick", "sparse_variant"]
