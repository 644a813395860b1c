"""Quantizer modules: fake-quantize activations and weights, with observers, STE and LSQ."""

from __future__ import annotations

import math

import torch
from torch import nn

from slimkit.errors import CalibrationError, ConfigError
from slimkit.quant.nonuniform import NonUniformScheme
from slimkit.quant.observers import make_observer
from slimkit.quant.qscheme import amin_amax, fake_quantize
from slimkit.quant.spec import ActQuant, WeightQuant


def grad_scale(t: torch.Tensor, g: float) -> torch.Tensor:
    """Forward: t. Backward: gradient × g (LSQ's step-size gradient scaling)."""
    return (t - t * g).detach() + t * g


class ActQuantizer(nn.Module):
    """Observes activations and fake-quantizes them.

    observing:  update the observer (calibration, or QAT before observers freeze)
    quantizing: fake-quantize with the current qparams (off during PTQ calibration)
    Counts training steps so QAT can freeze its observer after `freeze_after` steps.
    """

    def __init__(self, spec: ActQuant, name: str = "", freeze_after: int | None = None) -> None:
        super().__init__()
        self.spec, self.name, self.freeze_after = spec, name, freeze_after
        self.observer = None if spec.dynamic else make_observer(spec.observer, spec.scheme)
        self.observing = not spec.dynamic
        self.quantizing = spec.dynamic
        self.register_buffer("scale", torch.ones(1))
        self.register_buffer("zero_point", torch.zeros(1, dtype=torch.int32))
        self.register_buffer("steps", torch.zeros((), dtype=torch.long))

    @property
    def learnable(self) -> bool:
        return isinstance(self.scale, nn.Parameter)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scheme = self.spec.scheme
        if self.spec.dynamic:
            s, z = scheme.qparams(*amin_amax(x, scheme.granularity))
            return fake_quantize(x, s, z, scheme)
        if self.training:
            self.steps += 1
            if self.freeze_after is not None and self.steps > self.freeze_after:
                self.observing = False
        # Calibration observes in eval mode; a QAT model observes only while training, so
        # evaluating it never moves its ranges.
        if self.observing and (self.training or not self.quantizing):
            self._observe(x)
        if not self.quantizing:
            return x
        s = self.scale
        if self.learnable:
            s = grad_scale(s, 1.0 / math.sqrt(x[0].numel() * scheme.qmax))
        return fake_quantize(x, s, self.zero_point, scheme)

    def _observe(self, x: torch.Tensor) -> None:
        if not torch.isfinite(x).all():
            raise CalibrationError(f"non-finite values (NaN/inf) reach the input of '{self.name}'; "
                                   "calibration data and weights must be finite")
        self.observer(x)
        if self.quantizing and not self.learnable:  # QAT: follow the observer
            self._set_qparams(*self.observer.qparams())

    def _set_qparams(self, s: torch.Tensor, z: torch.Tensor) -> None:
        if self.scale.shape != s.shape:
            self.scale = torch.empty_like(s)
            self.zero_point = torch.empty_like(z)
        with torch.no_grad():
            self.scale.copy_(s)
            self.zero_point.copy_(z)

    def start_qat(self, learnable: bool) -> None:
        """Fake-quantize from now on; with LSQ the scale becomes a parameter seeded from the
        observer, which then stops (the scale is learned, not observed)."""
        if self.spec.dynamic:
            return
        self._set_qparams(*self.observer.qparams())
        self.quantizing = True
        if learnable:
            self.scale = nn.Parameter(self.scale.detach().clone())
            self.observing = False

    def freeze(self, structure_only: bool = False) -> None:
        """Fix qparams for inference and drop the observer (structure_only: keep the
        placeholder qparams; a state_dict load fills them)."""
        if self.spec.dynamic:
            return
        if self.observing and not self.learnable and not structure_only:
            self._set_qparams(*self.observer.qparams())
        if self.learnable:
            s = self.scale.detach().clone()
            del self.scale
            self.register_buffer("scale", s)
        self.observer, self.observing, self.quantizing = None, False, True

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # per-channel ranges are sized by the data: take the stored sizes
        for name in ("scale", "zero_point"):
            t = state_dict.get(prefix + name)
            if t is not None and t.shape != getattr(self, name).shape and not self.learnable:
                setattr(self, name, torch.empty_like(t))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def extra_repr(self) -> str:
        return self.spec.describe()


class WeightFakeQuant(nn.Module):
    """Fake-quantizes a weight from its own statistics on each call (or a learned scale)."""

    def __init__(self, spec: WeightQuant, shape: torch.Size) -> None:
        super().__init__()
        self.spec = spec
        self.nonuniform = isinstance(spec.scheme, NonUniformScheme)
        if not self.nonuniform:
            spec.scheme.granularity.check(shape, "weight")

    def make_learnable(self, w: torch.Tensor) -> None:
        """LSQ: the scale becomes a parameter, seeded from the observer on the weight."""
        if self.nonuniform:
            raise ConfigError(
                f"LSQ needs a linear weight scheme, not {self.spec.scheme.describe()}"
            )
        s, z = self.qparams(w)
        self.scale = nn.Parameter(s)
        self.register_buffer("zero_point", z)

    @property
    def learnable(self) -> bool:
        return isinstance(getattr(self, "scale", None), nn.Parameter)

    def qparams(self, w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.learnable:
            return self.scale.detach(), self.zero_point
        obs = make_observer(self.spec.observer, self.spec.scheme)
        obs(w)
        return obs.qparams()

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        if self.nonuniform:
            codes, params = self.spec.scheme.encode(w)
            return w + (self.spec.scheme.decode(codes, params) - w).detach()  # STE
        if self.learnable:
            g = 1.0 / math.sqrt(w.numel() / self.scale.numel() * self.spec.scheme.qmax)
            return fake_quantize(w, grad_scale(self.scale, g), self.zero_point, self.spec.scheme)
        s, z = self.qparams(w)
        return fake_quantize(w, s, z, self.spec.scheme)

    def extra_repr(self) -> str:
        return self.spec.describe()
