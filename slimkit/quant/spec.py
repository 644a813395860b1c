"""What one layer gets: the weight scheme and the activation schemes, with their observers."""

from __future__ import annotations

from dataclasses import dataclass, field

from slimkit.errors import ConfigError
from slimkit.quant.granularity import PerGroup, PerTensor, PerToken
from slimkit.quant.nonuniform import NonUniformScheme
from slimkit.quant.observers import MinMax, ObserverConfig
from slimkit.quant.qscheme import QScheme


@dataclass(frozen=True)
class WeightQuant:
    scheme: QScheme | NonUniformScheme
    observer: ObserverConfig = field(default_factory=MinMax)

    def describe(self) -> str:
        if isinstance(self.scheme, NonUniformScheme):
            return f"W {self.scheme.describe()}"
        return f"W {self.scheme.describe()} [{type(self.observer).__name__}]"


@dataclass(frozen=True)
class ActQuant:
    """Activation quantization: static (calibrated range) or dynamic (range per call)."""

    scheme: QScheme
    observer: ObserverConfig = field(default_factory=MinMax)
    dynamic: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.scheme, QScheme):
            raise ConfigError(f"ActQuant.scheme must be a linear QScheme, not {self.scheme!r}")
        g = self.scheme.granularity
        if isinstance(g, PerGroup):
            raise ConfigError("ActQuant: PerGroup granularity is for weights; use PerTensor, "
                              "PerChannel(axis) or, when dynamic, PerToken")
        if isinstance(g, PerToken) and not self.dynamic:
            raise ConfigError("ActQuant: PerToken needs dynamic=True (token count varies per call)")

    def describe(self) -> str:
        mode = "dynamic" if self.dynamic else type(self.observer).__name__
        return f"A {self.scheme.describe()} [{mode}]"


@dataclass(frozen=True)
class LayerQuant:
    weight: WeightQuant | None
    input: ActQuant | None = None
    output: ActQuant | None = None

    def describe(self) -> str:
        parts = [p.describe() for p in (self.weight, self.input) if p is not None]
        if self.output is not None:
            parts.append("out " + self.output.describe())
        return ", ".join(parts) or "float"

    @property
    def needs_calibration(self) -> bool:
        return any(a is not None and not a.dynamic for a in (self.input, self.output))


def uint8_act(observer: ObserverConfig | None = None) -> ActQuant:
    """Per-tensor affine uint8: what ONNX Runtime's fast u8s8 kernels want."""
    return ActQuant(QScheme(8, symmetric=False, signed=False, granularity=PerTensor()),
                    observer or MinMax())
