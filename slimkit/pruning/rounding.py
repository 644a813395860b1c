"""Which channel counts a pruned group may keep: multiples of a fixed step (round_to=8), or
the counts where this machine's runtime gets faster (round_to="auto", measured).

    Multiple(8).round(n=64, k=37) → 40          Allowed({leaf: (16, 32, 64)}).round(…, 37) → 32

Both answer the two questions the planner asks: `round(leaf, n, k)` — the count to keep when
the ratio asks for k of n — and `up(leaf, n, k)` — the next count above k, for handing back
the channels rounding overshot (pruning/api.py `_give_back`).
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field

from slimkit.errors import ConfigError, check_choice
from slimkit.latency.channel_steps import ChannelSteps, SweepKind

RUNTIMES = ("auto", "ort", "openvino")
PRECISIONS = ("fp32", "int8")


@dataclass(frozen=True)
class LatencyRounding:
    """round_to="auto": channel counts at the latency steps of `runtime` ('auto': OpenVINO
    where installed, else ONNX Runtime) in `precision`, measured at `batch` once per machine
    (bench/channel_steps.py; cached under cache_dir, default ~/.cache/slimkit). `tol`: the
    relative rise that ends a latency plateau."""

    runtime: str = "auto"
    precision: str = "int8"
    batch: int = 1
    threads: int = 2
    tol: float = 0.04
    cache_dir: str | None = None

    def __post_init__(self) -> None:
        check_choice("LatencyRounding.runtime", self.runtime, RUNTIMES)
        check_choice("LatencyRounding.precision", self.precision, PRECISIONS)
        for f in ("batch", "threads"):
            v = getattr(self, f)
            if not isinstance(v, int) or v < 1:
                raise ConfigError(f"LatencyRounding.{f}={v!r} must be an int ≥ 1")
        if not 0 < self.tol < 1:
            raise ConfigError(f"LatencyRounding.tol={self.tol!r} must be a fraction in (0, 1)")

    def resolved_runtime(self) -> str:
        if self.runtime != "auto":
            return self.runtime
        try:
            import openvino  # noqa: F401
        except ImportError:
            return "ort"
        return "openvino"


@dataclass(frozen=True)
class Multiple:
    """Kept counts are multiples of `step` (a group smaller than step is kept as it is)."""

    step: int = 1

    def round(self, leaf: int, n: int, k: int) -> int:
        k = max(1, k)
        if self.step > 1 and n >= self.step:
            k = max(self.step, int(round(k / self.step)) * self.step)
        return min(k, n)

    def up(self, leaf: int, n: int, k: int) -> int:
        return k + self.step if k + self.step <= n else k


@dataclass(frozen=True)
class Allowed:
    """Kept counts from a per-group list (ascending, each ending with the group's size);
    a group not listed keeps any count."""

    counts: dict[int, tuple[int, ...]] = field(default_factory=dict)

    def round(self, leaf: int, n: int, k: int) -> int:
        opts = self.counts.get(leaf)
        k = max(1, min(k, n))
        if not opts:
            return k
        i = bisect.bisect_left(opts, k)
        near = [opts[j] for j in (i - 1, i) if 0 <= j < len(opts)]
        return min(near, key=lambda c: (abs(c - k), -c))  # the nearest; ties keep more

    def up(self, leaf: int, n: int, k: int) -> int:
        opts = self.counts.get(leaf)
        if not opts:
            return min(k + 1, n)
        i = bisect.bisect_right(opts, k)
        return opts[i] if i < len(opts) else k


def group_kinds(graph, group) -> list[tuple[tuple[str, int], int]]:
    """((layer kind, kernel), how many layers) whose weights a group's channels index — as
    their outputs or inputs. Read from the weights' shapes: 4-D (out, in/groups, kh, kw) is a
    conv, depthwise when in/groups is 1; 2-D is a linear."""
    counts: dict[tuple[str, int], int] = {}
    for m in group.members:
        if m.name not in graph.weight_out_dims or m.kind != "param":
            continue
        shape = [graph.spaces[d].size for d in graph.param_dims[m.name]]
        if len(shape) == 4 and shape[2] == shape[3]:
            kind = ("depthwise" if shape[1] == 1 and shape[0] > 1 else "conv", shape[2])
        elif len(shape) == 2:
            kind = ("linear", 1)
        else:
            continue  # 1-D / 3-D convs and non-square kernels: no sweep; any count goes
        counts[kind] = counts.get(kind, 0) + 1
    return sorted(counts.items())


def measured(graph, groups, how: LatencyRounding) -> tuple[Allowed, list[str]]:
    """Allowed counts per group from this machine's sweeps; (rounding, notes for the report).
    Sweeps live in bench/ (they run the runtimes); imported here lazily, only for "auto"."""
    steps = ChannelSteps(how.resolved_runtime(), how.precision, how.batch, how.threads,
                         how.cache_dir, how.tol)
    kinds = {g.leaf: [(SweepKind(k, kernel), times) for (k, kernel), times in
                      group_kinds(graph, g)] for g in groups}
    need: dict = {}
    for g in groups:  # one sweep per kind, up to the largest group that touches it
        for kind, _ in kinds[g.leaf]:
            n_max, extra = need.get(kind, (0, ()))
            need[kind] = (max(n_max, g.size), (*extra, g.size))
    steps.measure(need)
    allowed = {g.leaf: tuple(steps.allowed(kinds[g.leaf], g.size)) for g in groups}
    notes = [f"round_to=auto: channel counts at the latency steps of {steps.describe()}"]
    for g in groups:
        names = ", ".join(f"{times}× {k.name}" for k, times in kinds[g.leaf]) or "no layer"
        opts = allowed[g.leaf]
        shown = ", ".join(map(str, opts)) if len(opts) <= 12 else \
            ", ".join(map(str, opts[:10])) + f", … {opts[-1]}"
        notes.append(f"  group of {g.size} ({g.owners[0] if g.owners else '?'}…; {names}): "
                     f"keeps one of {shown}")
    return Allowed(allowed), notes


__all__ = ["Allowed", "LatencyRounding", "Multiple", "group_kinds", "measured"]
