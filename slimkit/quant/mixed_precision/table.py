"""The sensitivity table: per layer and candidate scheme, what quantizing only that layer
costs the model (output SQNR, change of task loss / metric) and a Hessian-trace estimate."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field


@dataclass(frozen=True)
class SensitivityRow:
    layer: str
    scheme: str
    sqnr_db: float | None  # model output vs float, only this layer quantized; None: n/a
    delta_loss: float | None = None  # task loss with this layer quantized − float loss
    delta_metric: float | None = None
    weight_error: float | None = None  # ‖Q(W) − W‖²
    hawq: float | None = None  # tr(H)/n · ‖Q(W) − W‖² (HAWQ-v2)
    note: str = ""  # why a scheme does not apply to the layer

    @property
    def applicable(self) -> bool:
        return self.sqnr_db is not None

    @property
    def noise(self) -> float | None:
        """Relative output noise power 10^(−SQNR/10): adds up over layers whose errors are
        independent — the default objective of the mixed-precision solver."""
        if self.sqnr_db is None:
            return None
        return 0.0 if self.sqnr_db == math.inf else 10.0 ** (-self.sqnr_db / 10.0)


@dataclass(frozen=True)
class SensitivityTable:
    layers: tuple[str, ...]
    schemes: tuple[str, ...]
    rows: tuple[SensitivityRow, ...]
    hessian_trace: dict[str, float] = field(default_factory=dict)  # per layer (Hutchinson)
    key: str = ""  # cache key: weights + data + schemes + options

    def get(self, layer: str, scheme: str) -> SensitivityRow:
        for r in self.rows:
            if r.layer == layer and r.scheme == scheme:
                return r
        raise KeyError(f"no row for layer {layer!r}, scheme {scheme!r}")

    def to_dict(self) -> dict:
        def clean(v):
            if isinstance(v, float) and math.isinf(v):
                return "inf" if v > 0 else "-inf"
            return v

        return {"layers": list(self.layers), "schemes": list(self.schemes), "key": self.key,
                "hessian_trace": self.hessian_trace,
                "rows": [{k: clean(v) for k, v in asdict(r).items()} for r in self.rows]}

    @classmethod
    def from_dict(cls, d: dict) -> SensitivityTable:
        def unclean(v):
            return float(v) if v in ("inf", "-inf") else v

        rows = tuple(SensitivityRow(**{k: unclean(v) for k, v in r.items()}) for r in d["rows"])
        return cls(tuple(d["layers"]), tuple(d["schemes"]), rows, dict(d["hessian_trace"]),
                   d.get("key", ""))

    def __str__(self) -> str:
        w = max(8, *(len(n) for n in self.layers))
        head = f"{'layer':<{w}}  {'tr(H)':>9}  " + "  ".join(f"{s:>16}" for s in self.schemes)
        lines = ["output SQNR dB (Δ loss) with only that layer quantized", head, "-" * len(head)]
        for n in self.layers:
            tr = self.hessian_trace.get(n)
            cells = []
            for s in self.schemes:
                r = self.get(n, s)
                if not r.applicable:
                    cells.append(f"{'n/a':>16}")
                    continue
                db = "exact" if r.sqnr_db == math.inf else f"{r.sqnr_db:.1f}"
                dl = "" if r.delta_loss is None else f" ({r.delta_loss:+.3g})"
                cells.append(f"{db + dl:>16}")
            trs = "—" if tr is None else f"{tr:.3g}"
            lines.append(f"{n:<{w}}  {trs:>9}  " + "  ".join(cells))
        return "\n".join(lines)
