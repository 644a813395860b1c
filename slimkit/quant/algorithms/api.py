"""One entry point for every advanced PTQ method: `apply(model, config, calib)`.

Each method is a frozen dataclass config; a registry maps the config type to its handler
and its stage:

  float        the float model in, an equivalent float model out (CLE, SmoothQuant, AWQ):
               quantize the result with sk.quantize as usual
  quantized    a quantized model in (from sk.quantize), refined against its float reference
               (AdaRound, GPTQ, bias correction, log2 activations); a float model is
               quantized first with `qconfig=`
`ptq(model, qconfig, calib, steps)` runs float steps, sk.quantize, then the other steps, in
the order given — the shape of a recipe stage (and of `sk.quantize(model,
config.with_algorithms(...), calib)`). Every call returns the model; what each method did is
its record's report (`sk.record_of(q).report`).
"""

from __future__ import annotations

import dataclasses
import time
import typing
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from torch import nn

from slimkit.errors import ConfigError
from slimkit.quant.algorithms.common import float_reference, note_step, original_of
from slimkit.quant.algorithms.report import AlgorithmReport, PTQReport, config_dict
from slimkit.quant.config import QuantConfig
from slimkit.quant.flows import is_quantized, quantize
from slimkit.record import copy_model, record_of

STAGES = ("float", "quantized")


@dataclass(frozen=True)
class Handler:
    fn: Callable
    stage: str
    name: str


ALGORITHMS: dict[type, Handler] = {}
NAMES: dict[str, type] = {}  # recipe spelling → config type


def register(config_type: type, stage: str, name: str):
    """float handlers: fn(model, config, calib, qconfig) → (model, report), on a copy;
    quantized handlers: fn(qmodel, config, calib, reference) → report, in place."""
    def wrap(fn):
        ALGORITHMS[config_type] = Handler(fn, stage, name)
        NAMES[name] = config_type
        return fn

    return wrap


class AlgoConfig:
    """Mixin: `from_dict` for recipes (lists become tuples; unknown keys name the fields)."""

    @classmethod
    def from_dict(cls, d: dict | None = None):
        d = dict(d or {})
        fields = {f.name: f for f in dataclasses.fields(cls)}
        bad = sorted(set(d) - set(fields))
        if bad:
            raise ConfigError(f"{cls.__name__}: unknown field(s) {bad}; allowed: {sorted(fields)}")
        hints = typing.get_type_hints(cls)
        for k, v in d.items():
            if isinstance(v, list) and "tuple" in str(hints.get(k, "")):
                d[k] = tuple(v)
        return cls(**d)


def algorithm_from_dict(d: dict) -> AlgoConfig:
    """{"gptq": {"damp": 0.01}} → GPTQ(damp=0.01)."""
    if not isinstance(d, dict) or len(d) != 1:
        raise ConfigError(f"an algorithm step is one mapping {{name: fields}}, not {d!r}; "
                          f"names: {sorted(NAMES)}")
    (name, fields), = d.items()
    if name not in NAMES:
        raise ConfigError(f"algorithm {name!r} unknown; choose one of {sorted(NAMES)}")
    return NAMES[name].from_dict(fields)


def _handler(config) -> Handler:
    if type(config) not in ALGORITHMS:
        known = sorted(t.__name__ for t in ALGORITHMS)
        raise ConfigError(f"{config!r} is not an algorithm config; known: {known}")
    return ALGORITHMS[type(config)]


def apply(model: nn.Module, config, calib: Iterable | None = None, *,
          qconfig: QuantConfig | None = None, reference: nn.Module | None = None,
          inplace: bool = False) -> nn.Module:
    """Run one method. Float-stage methods return a transformed copy of a float model.
    Quantized-stage methods refine a model from sk.quantize (a copy unless inplace) against
    `reference` (default: the float model quantize() started from), or quantize a float
    model with `qconfig` first."""
    h = _handler(config)
    t0 = time.perf_counter()
    source = model
    if h.stage == "float":
        if is_quantized(model):
            raise ConfigError(f"{h.name} transforms a float model; apply it before sk.quantize")
        model, report = h.fn(model, config, calib, qconfig)
    else:
        model, reference = _quantized_input(model, h.name, calib, qconfig, reference, inplace)
        report = h.fn(model, config, calib, float_reference(reference))
    report = dataclasses.replace(report, seconds=time.perf_counter() - t0)
    note_step(model, h.name, config_dict(config), report.structure, report.summary(), source)
    record_of(model).reports.append(report)
    return model


def _quantized_input(model, name, calib, qconfig, reference, inplace):
    if not is_quantized(model):
        if qconfig is None:
            raise ConfigError(f"{name} refines a quantized model: pass a model from "
                              "sk.quantize, or a float model and qconfig=")
        return quantize(model, qconfig, calib, progress=False), reference or model
    reference = reference if reference is not None else original_of(model)
    if reference is None:
        raise ConfigError(f"{name} needs the float model: pass reference= (the model given "
                          "to sk.quantize)")
    return (model if inplace else copy_model(model)), reference


def ptq(model: nn.Module, qconfig: QuantConfig, calib: Iterable, steps=(),
        target="auto") -> nn.Module:
    """Float steps → sk.quantize(model, qconfig, calib) → quantized steps, in that order;
    the record's report is the PTQReport of them all."""
    steps = tuple(algorithm_from_dict(s) if isinstance(s, dict) else s for s in steps)
    stages = [_handler(s).stage for s in steps]
    first_quantized = stages.index("quantized") if "quantized" in stages else len(stages)
    if "float" in stages[first_quantized:]:
        order = [f"{_handler(s).name} ({st})" for s, st in zip(steps, stages, strict=True)]
        raise ConfigError(f"ptq steps: float-stage methods must come before quantized-stage "
                          f"ones (sk.quantize runs between them); got {order}")
    reports = []
    for s in steps:
        if _handler(s).stage == "float":
            model = apply(model, s, calib, qconfig=qconfig)
            reports.append(record_of(model).report)
    q = quantize(model, qconfig, calib, progress=False, target=target)
    for s in steps:
        if _handler(s).stage == "quantized":
            q = apply(q, s, calib, reference=model, inplace=True)
            reports.append(record_of(q).report)
    record_of(q).reports.append(PTQReport(tuple(reports), record_of(q).plan))
    return q


def report_for(name: str, config, applied=(), skipped=(), notes=(),
               structure: dict | None = None) -> AlgorithmReport:
    return AlgorithmReport(name, config_dict(config), tuple(applied), tuple(skipped),
                           tuple(notes), structure=structure or {})
