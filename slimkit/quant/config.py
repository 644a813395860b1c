"""QuantConfig: a default layer scheme, per-layer rules, and QAT options.

Rules select layers by qualified-name glob and/or module type; the *last* matching rule
wins (general rules first, exceptions after). `resolve_plan` (plan.py) turns a config and a
model into the per-layer plan that says which layer got what and why.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from pydantic import Field
from torch import nn

from slimkit.config import Config
from slimkit.errors import ConfigError, check_choice
from slimkit.graph.modules import name_matches
from slimkit.quant.granularity import PerChannel, PerGroup, PerTensor, PerToken
from slimkit.quant.nonuniform import NonUniformScheme
from slimkit.quant.observers import MinMax, MovingAverage, ObserverConfig
from slimkit.quant.qscheme import QScheme
from slimkit.quant.spec import ActQuant, LayerQuant, WeightQuant, uint8_act


class QATOptions(Config):
    """How quantization-aware training treats scales, batch norm and observers."""

    lsq: bool = False
    """Learn the quantization scales (LSQ, Esser et al. 2020)."""
    fold_bn: bool = True
    """Train Conv + BN folded, as they will be deployed."""
    freeze_bn_after: int | None = Field(None, ge=0)
    """Optimizer steps after which BN uses its running statistics (None: never)."""
    freeze_observers_after: int | None = Field(None, ge=0)
    """Optimizer steps after which the activation ranges stop moving (None: never)."""


@dataclass(frozen=True)
class Rule:
    """Layers whose name matches `pattern` (glob) and whose type is one of `types` get
    `spec`; spec=None keeps them float. An empty pattern / types matches any."""

    pattern: str | None = None
    types: tuple[type[nn.Module], ...] = ()
    spec: LayerQuant | None = None

    def __post_init__(self) -> None:
        if self.pattern is None and not self.types:
            raise ConfigError("Rule needs a name pattern, module types, or both")

    def matches(self, name: str, module: nn.Module) -> bool:
        ok_name = self.pattern is None or name_matches(self.pattern, name)
        return ok_name and (not self.types or isinstance(module, self.types))

    def describe(self) -> str:
        what = []
        if self.pattern is not None:
            what.append(f"name '{self.pattern}'")
        if self.types:
            what.append("type " + "|".join(t.__name__ for t in self.types))
        action = "skip" if self.spec is None else self.spec.describe()
        return f"{' and '.join(what)} → {action}"


@dataclass(frozen=True)
class QuantConfig:
    default: LayerQuant
    rules: tuple[Rule, ...] = ()
    layer_types: tuple[type[nn.Module], ...] = ()  # () = every type with a quantized wrapper
    # inputs of residual adds and average pools (found by an fx trace): integer runtimes keep
    # a conv in int8 only when its output tensor is quantized too
    op_inputs: ActQuant | None = None
    qat: QATOptions = field(default_factory=QATOptions)
    name: str = "custom"
    # advanced PTQ run by sk.quantize around the calibration: float-stage methods first (CLE,
    # SmoothQuant, AWQ), then the quantized-stage ones (GPTQ, AdaRound, bias correction)
    algorithms: tuple = ()

    # ---- presets -------------------------------------------------------------------------
    @classmethod
    def w8a8(cls, observer: ObserverConfig | None = None, signed_acts: bool = False):
        """int8 symmetric per-channel weights, uint8 affine per-tensor activations (ONNX
        Runtime's fast u8s8 path on x86; signed_acts=True gives int8 activations, s8s8)."""
        act = _act8(observer, signed_acts)
        return cls(LayerQuant(_w(8), act), op_inputs=act, name="w8a8" + "-s8" * signed_acts)

    @classmethod
    def w4a8(cls, observer: ObserverConfig | None = None, signed_acts: bool = False):
        act = _act8(observer, signed_acts)
        return cls(LayerQuant(_w(4), act), op_inputs=act, name="w4a8" + "-s8" * signed_acts)

    @classmethod
    def w4a4(cls, observer: ObserverConfig | None = None) -> QuantConfig:
        """4-bit weights and 4-bit (uint4 affine) activations: needs QAT to keep accuracy."""
        act = ActQuant(QScheme(4, symmetric=False, signed=False), observer or MinMax())
        return cls(LayerQuant(_w(4), act), op_inputs=act, name="w4a4")

    @classmethod
    def weight_only(
        cls, bits: int = 8, group_size: int | None = None, observer: ObserverConfig | None = None
    ) -> QuantConfig:
        gran = PerGroup(group_size) if group_size else PerChannel(0)
        wq = WeightQuant(QScheme(bits, granularity=gran), observer or MinMax())
        name = f"w{bits}" + (f"g{group_size}" if group_size else "")
        return cls(LayerQuant(wq), name=name)

    @classmethod
    def dynamic(cls, bits: int = 8, activations: str = "per_token") -> QuantConfig:
        """Linear layers: int8 per-channel weights, activations quantized at run time — no
        calibration data needed. Embedding, LSTM and GRU layers get int8 weights only (the
        plan says why). activations: 'per_token' (int8 symmetric per row: what torch._int_mm
        consumes; exported as per-row quantization + MatMulInteger) or 'per_tensor' (uint8
        affine over the whole input: ONNX Runtime's DynamicQuantizeMatMul, as its
        quantize_dynamic makes)."""
        check_choice("QuantConfig.dynamic activations", activations, {"per_token", "per_tensor"})
        if activations == "per_token":
            scheme = QScheme(8, symmetric=True, signed=True, granularity=PerToken())
        else:
            scheme = QScheme(8, symmetric=False, signed=False, granularity=PerTensor())
        act = ActQuant(scheme, dynamic=True)
        name = f"dynamic-w{bits}" + ("-pertensor" if activations == "per_tensor" else "")
        return cls(LayerQuant(_w(bits), act), name=name,
                   layer_types=(nn.Linear, nn.Embedding, nn.LSTM, nn.GRU))

    @classmethod
    def nonuniform(cls, kind: str, bits: int = 4) -> QuantConfig:
        return cls(LayerQuant(WeightQuant(NonUniformScheme(kind, bits))), name=f"{kind}{bits}")

    # ---- refinements (each returns a new config) -------------------------------------------
    def skip(self, pattern: str | None = None, types: tuple[type[nn.Module], ...] = ()):
        return replace(self, rules=(*self.rules, Rule(pattern, tuple(types), None)))

    def override(self, spec: LayerQuant, pattern: str | None = None,
                 types: tuple[type[nn.Module], ...] = ()) -> QuantConfig:
        return replace(self, rules=(*self.rules, Rule(pattern, tuple(types), spec)))

    def with_algorithms(self, *steps) -> QuantConfig:
        """The same config, refined by advanced PTQ methods (slimkit.quant.algorithms configs,
        or their recipe spelling {"gptq": {...}}), run by sk.quantize in the order given."""
        return replace(self, algorithms=(*self.algorithms, *steps))

    def with_qat(self, **options) -> QuantConfig:
        return replace(self, qat=self.qat.replace(**options))

    def with_act_observer(self, observer: ObserverConfig, replacing: type | None = None):
        """Same config, static activations observed with `observer` (only those observed by a
        `replacing` type when given, e.g. MinMax → MovingAverage for QAT)."""
        def keep(a: ActQuant | None) -> bool:
            return a is None or a.dynamic or (replacing and not isinstance(a.observer, replacing))

        def swap(spec: LayerQuant | None) -> LayerQuant | None:
            if spec is None:
                return None
            acts = {k: a if keep(a) else replace(a, observer=observer)
                    for k, a in (("input", spec.input), ("output", spec.output))}
            return replace(spec, **acts)

        rules = tuple(replace(r, spec=swap(r.spec)) for r in self.rules)
        adds = self.op_inputs if keep(self.op_inputs) else replace(
            self.op_inputs, observer=observer)
        return replace(self, default=swap(self.default), rules=rules, op_inputs=adds)


def _act8(observer: ObserverConfig | None, signed: bool) -> ActQuant:
    if not signed:
        return uint8_act(observer)
    return ActQuant(QScheme(8, symmetric=False, signed=True), observer or MinMax())


def _w(bits: int) -> WeightQuant:
    return WeightQuant(QScheme(bits, symmetric=True, signed=True, granularity=PerChannel(0)))


QAT_ACT_OBSERVER = MovingAverage()
