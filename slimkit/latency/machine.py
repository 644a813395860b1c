"""Where a measurement ran: the CPU (model, ISA features that decide int8 numerics and speed),
threads, and the versions of every runtime. Every table and JSON slimkit writes starts with it,
because a ratio measured on one CPU says little about another."""

from __future__ import annotations

import importlib.metadata
import os
import platform

from slimkit.target import detect

RUNTIME_PACKAGES = ("torch", "onnxruntime", "openvino", "onnx")


def versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {"python": platform.python_version()}
    for pkg in ("slimkit", *RUNTIME_PACKAGES):
        try:
            out[pkg] = importlib.metadata.version(pkg)
        except importlib.metadata.PackageNotFoundError:
            out[pkg] = None  # not installed here
    return out


def environment(threads: int | None = None) -> dict:
    """JSON-able record of the machine and software a measurement ran on."""
    return {"cpu": detect().to_dict(), "threads": threads, "versions": versions()}


def machine_line(threads: int | None = None) -> str:
    """One line for the head of a table: CPU, ISA, threads, runtime versions, and the load
    average when the table starts (above the core count: other jobs shared the machine, so
    ratios measured in the same run hold, absolute times do not)."""
    t = detect()
    v = versions()
    soft = ", ".join(f"{k} {v[k]}" for k in RUNTIME_PACKAGES if k != "onnx" and v[k])
    thr = f" · {threads} threads" if threads else ""
    return f"machine: {t.model} · {t.cores} cores · {t.isa()}{thr} · {soft}{_load(t.cores)}"


def _load(cores: int) -> str:
    try:
        load = os.getloadavg()[0]
    except (AttributeError, OSError):  # not on every OS
        return ""
    return f" · load {load:.1f}" + (" (shared with other jobs)" if load > cores + 0.5 else "")
