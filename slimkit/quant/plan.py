"""The per-layer plan: which layer gets which scheme, and why. Printable and serializable."""

from __future__ import annotations

from dataclasses import dataclass, replace

from torch import nn

from slimkit.errors import ConfigError
from slimkit.quant import recurrent  # noqa: F401 — registers the LSTM / GRU wrappers
from slimkit.quant.config import QuantConfig
from slimkit.quant.modules import QUANT_MODULES
from slimkit.quant.qscheme import QScheme
from slimkit.quant.spec import LayerQuant
from slimkit.target import Target, resolve_target


@dataclass(frozen=True)
class PlanEntry:
    name: str
    module_type: str
    spec: LayerQuant | None  # None: stays float
    reason: str


def _numerics(spec: LayerQuant | None) -> str:
    if spec is None or spec.weight is None:
        return "fp32"
    w = getattr(spec.weight.scheme, "bits", None)
    a = spec.input.scheme.bits if spec.input is not None else None
    if a is None:
        return f"int{w} weights"
    return f"int{w}" if a == w else f"w{w}a{a}"


@dataclass(frozen=True)
class QuantPlan:
    config_name: str
    entries: tuple[PlanEntry, ...]
    tensors: tuple[PlanEntry, ...] = ()  # quantized tensors no layer owns (adds, pools)
    notes: tuple[str, ...] = ()  # what the plan could not do, and why
    target: str | None = None  # the machine whose integer kernels the numerics fit

    def quantized(self) -> list[PlanEntry]:
        return [e for e in self.entries if e.spec is not None]

    def numerics(self) -> str:
        """The model's numerics in a word: 'int8', 'int4', 'w4a8', … when every planned layer
        shares one, 'mixed' otherwise (some float, or several schemes)."""
        kinds = {_numerics(e.spec) for e in self.entries}
        return kinds.pop() if len(kinds) == 1 else "mixed"

    @property
    def needs_calibration(self) -> bool:
        return bool(self.tensors) or any(e.spec.needs_calibration for e in self.quantized())

    def to_dict(self) -> dict:
        return {
            "config": self.config_name,
            "target": self.target,
            "notes": list(self.notes),
            "layers": [
                {"name": e.name, "type": e.module_type,
                 "scheme": e.spec.describe() if e.spec else "float", "reason": e.reason}
                for e in (*self.entries, *self.tensors)
            ],
        }

    def __str__(self) -> str:
        rows = [(e.name, e.module_type, e.spec.describe() if e.spec else "float", e.reason)
                for e in (*self.entries, *self.tensors)]
        heads = ("layer", "type", "scheme", "why")
        widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(heads)]
        line = "  ".join(h.ljust(w) for h, w in zip(heads, widths, strict=True))
        body = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
        notes = [f"note: {n}" for n in self.notes]
        title = f"quantization plan ({self.config_name})"
        return "\n".join([title, line, *body, *notes])


def resolve_plan(model: nn.Module, config: QuantConfig,
                 target: str | Target | None = None) -> QuantPlan:
    """Which layer gets what. With a target ('auto': this machine), int8 layers get the weight
    range that target's integer kernels compute exactly (7 bits on x86 without VNNI)."""
    layers = [(n, m) for n, m in model.named_modules() if type(m) in QUANT_MODULES]
    if not layers:
        raise ConfigError(f"{type(model).__name__} has no quantizable layer; supported types: "
                          f"{sorted(t.__name__ for t in QUANT_MODULES)}")
    for i, rule in enumerate(config.rules):
        if not any(rule.matches(n, m) for n, m in layers):
            names = ", ".join(n for n, _ in layers[:8])
            raise ConfigError(f"rule {i} ({rule.describe()}) matches no quantizable layer; "
                              f"layers are: {names}{' …' if len(layers) > 8 else ''}")
    entries = [_entry(n, m, config) for n, m in layers]
    for e in entries:
        if e.spec is not None and e.spec.weight is not None:
            _check_fits(e, model.get_submodule(e.name))
    entries = _with_float_layers(model, entries)
    if target is None:
        return QuantPlan(config.name, tuple(entries))
    t = resolve_target(target)
    entries, notes = for_target(entries, t)
    return QuantPlan(config.name, tuple(entries), notes=notes, target=t.describe())


def runs_on_int8_kernels(spec: LayerQuant | None) -> bool:
    """8-bit linear weights with 8-bit activations (static or dynamic): a u8s8 / s8s8 GEMM."""
    return (spec is not None and spec.weight is not None and spec.input is not None
            and isinstance(spec.weight.scheme, QScheme) and spec.weight.scheme.bits in (7, 8)
            and spec.input.scheme.bits == 8)


def for_target(entries: list[PlanEntry], target: Target) -> tuple[list[PlanEntry], tuple]:
    """Entries with the weight range `target` computes exactly, and the note saying why."""
    bits, why = target.int8_weight_bits()
    hits = [e for e in entries if runs_on_int8_kernels(e.spec)]
    if not hits:
        return entries, ()
    out = []
    for e in entries:
        w = e.spec.weight if runs_on_int8_kernels(e.spec) else None
        if w is not None and w.scheme.bits != bits:
            spec = replace(e.spec, weight=replace(w, scheme=replace(w.scheme, bits=bits)))
            e = replace(e, spec=spec, reason=f"{e.reason}; {bits}-bit weights for the target")
        out.append(e)
    return out, (f"target {target.describe()} → {bits}-bit int8 weights: {why}",)


def _entry(name: str, module: nn.Module, config: QuantConfig) -> PlanEntry:
    spec, reason = config.default, f"default ({config.name})"
    if config.layer_types and not isinstance(module, config.layer_types):
        allowed = "|".join(t.__name__ for t in config.layer_types)
        spec, reason = None, f"{config.name} applies to {allowed} only"
    for i, rule in enumerate(config.rules):
        if rule.matches(name, module):
            spec, reason = rule.spec, f"rule {i}: {rule.describe()}"
    wrapper = QUANT_MODULES[type(module)]
    if spec is not None and not wrapper.takes_activations and (spec.input or spec.output):
        spec = LayerQuant(spec.weight)
        reason += f"; weights only: {_WEIGHTS_ONLY_WHY.get(type(module), 'no activations')}"
    return PlanEntry(name, type(module).__name__, spec, reason)


_WEIGHTS_ONLY_WHY = {
    nn.Embedding: "its inputs are indices (a Gather of int8 rows)",
    nn.LSTM: "float recurrence over int8 gate weights (quantizing the state every step "
             "compounds over the sequence)",
    nn.GRU: "float recurrence over int8 gate weights (quantizing the state every step "
            "compounds over the sequence)",
}


def _weight_names(module: nn.Module) -> list[str]:
    names = getattr(module, "_flat_weights_names", None)
    return [n for n in names if n.startswith("weight")] if names else ["weight"]


def _check_fits(entry: PlanEntry, module: nn.Module) -> None:
    scheme = entry.spec.weight.scheme
    if hasattr(scheme, "granularity"):
        for n in _weight_names(module):
            scheme.granularity.check(getattr(module, n).shape, f"the {n} of '{entry.name}'")


def _float_reason(name: str, module: nn.Module, parents: dict[str, nn.Module]) -> str:
    parent = parents.get(name.rpartition(".")[0])
    if isinstance(parent, nn.MultiheadAttention):
        return ("part of nn.MultiheadAttention, which reads its weight directly (the layer's "
                "own forward never runs)")
    if isinstance(module, nn.MultiheadAttention):
        return ("nn.MultiheadAttention computes its packed in-projection inside "
                "F.multi_head_attention_forward: slimkit has no quantized form of it")
    return f"slimkit has no quantized {type(module).__name__}"


def _with_float_layers(model: nn.Module, entries: list[PlanEntry]) -> list[PlanEntry]:
    """The plan lists every layer that stays float, with why: the quantizable ones a config
    or rule skipped are already in `entries`; here, the layers with weight matrices that no
    quantized wrapper covers (attention's packed projections, transposed convs, …)."""
    modules = dict(model.named_modules())
    covered = {e.name for e in entries}
    out = list(entries)
    for name, m in modules.items():
        if name in covered or any(name.startswith(f"{c}.") for c in covered if c):
            continue
        if any(p.dim() >= 2 for p in m.parameters(recurse=False)):
            out.append(PlanEntry(name, type(m).__name__, None, _float_reason(name, m, modules)))
    order = {n: i for i, n in enumerate(modules)}
    return sorted(out, key=lambda e: order.get(e.name, 0))


def with_tensors(plan: QuantPlan, inserted: list[tuple[str, str]], spec,
                 note: str | None = None) -> QuantPlan:
    """The plan plus the op-input quantizers the graph pass inserted (or why it could not)."""
    why = "its producer stays int8 only if this tensor is quantized"
    extra = tuple(PlanEntry(n, what, LayerQuant(None, spec), why) for n, what in inserted)
    notes = plan.notes + ((note,) if note else ())
    return QuantPlan(plan.config_name, plan.entries, plan.tensors + extra, notes, plan.target)
