"""The machine a model is compressed for: CPU vendor, model, cores and the ISA features that
decide integer numerics and speed.

Why it matters: on x86 without VNNI, ONNX Runtime's u8s8 kernels multiply u8 activations by s8
weights with `vpmaddubsw`, which adds *pairs* of products in int16 and saturates: two products
of 255 × 127 overflow. VNNI (`vpdpbusd`) and AMX accumulate in int32 and never do. slimkit
therefore picks the weight range per target (7-bit weights where pairs saturate) and simulates
exactly what the kernel computes.

Features come from the CPUID instruction where the process can run it (what the runtimes'
own dispatchers see — also under an emulator), else from the kernel's /proc/cpuinfo. Detection
runs once, on first use; `import slimkit` never probes the hardware.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import platform
from dataclasses import dataclass, field, replace

from slimkit import _cpuid
from slimkit.errors import ConfigError

# Features that change numerics or speed, by slimkit's names.
X86_FEATURES = ("avx2", "fma", "avx512f", "avx512bw", "avx512vl", "avx512_vnni", "avx_vnni",
                "avx512_bf16", "avx512_fp16", "amx_tile", "amx_int8", "amx_bf16")
ARM_FEATURES = ("neon", "dotprod", "i8mm", "sve", "bf16", "fp16")
# /proc/cpuinfo spellings → slimkit's names
_PROC_FLAGS = {"avx2": "avx2", "fma": "fma", "avx512f": "avx512f", "avx512bw": "avx512bw",
               "avx512vl": "avx512vl", "avx512_vnni": "avx512_vnni", "avx_vnni": "avx_vnni",
               "avx512_bf16": "avx512_bf16", "avx512_fp16": "avx512_fp16",
               "amx_tile": "amx_tile", "amx_int8": "amx_int8", "amx_bf16": "amx_bf16",
               "asimd": "neon", "asimddp": "dotprod", "i8mm": "i8mm", "sve": "sve",
               "bf16": "bf16", "asimdhp": "fp16"}
_SHORT = {"avx2": "AVX2", "avx512f": "AVX-512", "avx512_vnni": "AVX512-VNNI",
          "avx_vnni": "AVX-VNNI", "amx_int8": "AMX-INT8", "amx_bf16": "AMX-BF16",
          "avx512_bf16": "AVX512-BF16", "avx512_fp16": "AVX512-FP16", "neon": "NEON",
          "dotprod": "DOTPROD", "i8mm": "I8MM"}


@dataclass(frozen=True)
class Target:
    arch: str  # x86_64 | aarch64 | …
    vendor: str  # GenuineIntel | AuthenticAMD | ARM | …
    model: str
    cores: int  # logical CPUs this process may use
    features: frozenset[str] = field(default_factory=frozenset)
    source: str = "detected"  # detected (cpuid / cpuinfo) or the preset's name

    # ---- what the features mean for int8 --------------------------------------------------
    @property
    def x86(self) -> bool:
        return self.arch in ("x86_64", "amd64", "x86", "i686")

    @property
    def vnni(self) -> bool:
        return bool({"avx512_vnni", "avx_vnni", "amx_int8"} & self.features)

    # ---- and for float16 / bfloat16 -------------------------------------------------------
    def float_units(self, precision: str) -> tuple[str, ...]:
        """This CPU's arithmetic units for `precision` ('bf16', 'fp16'), by name; () where it
        has none and every op is emulated by conversions ('fp32': always ('fp32',))."""
        units = {"fp32": ("fp32",), "bf16": ("avx512_bf16", "amx_bf16", "bf16"),
                 "fp16": ("avx512_fp16", "fp16")}
        if precision not in units:
            raise ConfigError(f"precision {precision!r}: expected one of {sorted(units)}")
        if precision == "fp32":
            return units["fp32"]
        return tuple(_SHORT.get(u, u.upper()) for u in units[precision] if u in self.features)

    @property
    def u8s8_pairs_saturate(self) -> bool:
        """x86 without VNNI/AMX: u8×s8 products are summed in pairs into int16 (vpmaddubsw)."""
        return self.x86 and not self.vnni

    def int8_weight_bits(self) -> tuple[int, str]:
        """(bits of the weight range that the u8s8 / s8s8 kernel computes exactly, why)."""
        if self.u8s8_pairs_saturate:
            return 7, ("no VNNI, so ONNX Runtime's int8 kernels add pairs of u8×s8 products "
                       "in int16 (vpmaddubsw) and saturate with 8-bit weights; 7-bit weights "
                       "[-64, 63] keep every pair ≤ 32,640 (exact)")
        how = ("AMX tiles" if "amx_int8" in self.features else "VNNI (vpdpbusd)") if self.x86 \
            else "int32 accumulation"
        return 8, f"{how} accumulate in int32, exact for 8-bit weights"

    # ---- printing and keys ------------------------------------------------------------------
    def isa(self) -> str:
        names = [_SHORT[f] for f in (*X86_FEATURES, *ARM_FEATURES)
                 if f in self.features and f in _SHORT]
        return " ".join(names) or "baseline ISA"

    def short(self) -> str:
        return f"{self.model} ({self.isa()})"

    def describe(self) -> str:
        src = "" if self.source == "detected" else f", preset '{self.source}'"
        return f"{self.model} · {self.arch} · {self.cores} cores · {self.isa()}{src}"

    def to_dict(self) -> dict:
        return {"arch": self.arch, "vendor": self.vendor, "model": self.model,
                "cores": self.cores, "features": sorted(self.features), "source": self.source}

    def key(self) -> str:
        """Short stable id of the machine kind (for per-machine caches): a latency table
        measured on one CPU is never reused on another."""
        blob = json.dumps({k: v for k, v in self.to_dict().items() if k != "source"},
                          sort_keys=True)
        return hashlib.sha1(blob.encode()).hexdigest()[:12]


def _preset(name: str, arch: str, model: str, feats: tuple[str, ...]) -> Target:
    vendor = "ARM" if arch == "aarch64" else "GenuineIntel"
    return Target(arch, vendor, model, os.cpu_count() or 1, frozenset(feats), name)


_AVX2 = ("avx2", "fma")
_AVX512 = (*_AVX2, "avx512f", "avx512bw", "avx512vl")
PRESETS = {
    "x86-avx2": _preset("x86-avx2", "x86_64", "x86-64 with AVX2, no VNNI", _AVX2),
    "x86-avx512": _preset("x86-avx512", "x86_64", "x86-64 with AVX-512, no VNNI", _AVX512),
    "x86-vnni": _preset("x86-vnni", "x86_64", "x86-64 with AVX-512 VNNI",
                        (*_AVX512, "avx512_vnni")),
    "x86-amx": _preset("x86-amx", "x86_64", "x86-64 with AMX",
                       (*_AVX512, "avx512_vnni", "avx512_bf16", "amx_tile", "amx_int8",
                        "amx_bf16")),
    "arm64": _preset("arm64", "aarch64", "ARMv8 with NEON", ("neon",)),
    "arm64-dotprod": _preset("arm64-dotprod", "aarch64", "ARMv8.2 with dot product",
                             ("neon", "dotprod")),
}
# The conservative choice for a model that must be exact on any x86 CPU it meets.
PRESETS["portable"] = replace(PRESETS["x86-avx2"], source="portable")


def resolve_target(target: str | Target | None = "auto") -> Target:
    """'auto' (or None): this machine (SLIMKIT_TARGET overrides it); a preset name; a Target."""
    if isinstance(target, Target):
        return target
    if target is None or target == "auto":
        env = os.environ.get("SLIMKIT_TARGET")
        return resolve_target(env) if env and env != "auto" else detect()
    if target in PRESETS:
        return PRESETS[target]
    raise ConfigError(f"target={target!r} is not allowed; choose 'auto' (this machine), a "
                      f"slimkit.target.Target, or one of {sorted(PRESETS)}")


@functools.cache
def detect() -> Target:
    """This machine, detected once per process."""
    arch = platform.machine().lower() or "unknown"
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (
        os.cpu_count() or 1)
    proc = _proc_cpuinfo()
    vendor, model, feats = proc.get("vendor", ""), proc.get("model", ""), proc.get("flags", set())
    if arch in ("x86_64", "amd64"):
        info = _cpuid.x86_info()
        if info is not None:  # CPUID: what the runtimes' dispatchers see
            vendor, model, feats = info
    model = model or platform.processor() or arch
    return Target(arch, vendor or "unknown", " ".join(model.split()), cores,
                  frozenset(f for f in feats if f in (*X86_FEATURES, *ARM_FEATURES)))


def _proc_cpuinfo() -> dict:
    try:
        with open("/proc/cpuinfo") as f:
            text = f.read()
    except OSError:
        return {}
    out: dict = {"flags": set()}
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key, value = key.strip().lower(), value.strip()
        if key == "vendor_id" and "vendor" not in out:
            out["vendor"] = value
        elif key in ("model name", "hardware", "cpu model") and "model" not in out:
            out["model"] = value
        elif key in ("flags", "features") and not out["flags"]:
            out["flags"] = {_PROC_FLAGS[f] for f in value.split() if f in _PROC_FLAGS}
    if out.get("vendor") is None and "CPU implementer" in text:
        out["vendor"] = "ARM"
    return out


__all__ = ["PRESETS", "Target", "detect", "resolve_target"]
