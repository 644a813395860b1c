"""How latency steps with channel count on this machine's runtime — and where to round.

Integer kernels block channels into tiles (AMX: 16 rows × 64 int8; VNNI: 16 lanes of 4 int8),
so a layer's time is a staircase in its channel count, not a ramp: measured on a Xeon with
AMX, OpenVINO int8, ResNet-18 pruned to 50% of MACs ran 1.77 ms with channels rounded to 64
and 2.13 ms rounded to 8 (issue 16). `round_to="auto"` (PruneConfig) reads that staircase
from a sweep, once per machine:

    steps = ChannelSteps("openvino", "int8")      # cached per Target.key() + runtime version
    curve = steps.curve(SweepKind("conv", 3), 256)  # {channels: ms}, measured where missing
    steps.allowed([(SweepKind("conv", 3), 2)], n=256)   # the counts where latency drops

A sweep is one layer per count with c_in = c_out = c (a group's channels are the outputs of
one layer and the inputs of the next) at a representative size, timed through the latency
table (LatencyTable: interleaved chunks, the runtime's own kernel times, the cache atomic and
resumable, another machine's ignored). Each count's time is a low quantile of its kernel
times, which a shared machine's interruptions only ever raise.

Where to round: each kind's curve is normalised (÷ its median), a group's touched kinds are
summed with their multiplicity, made non-decreasing (isotonic regression: more channels never
cost less, what looks cheaper is noise or a kernel switch slimkit cannot rely on), and cut
into plateaus (each step within `tol` of the plateau's first value). A plateau's last count
is where latency drops on the way down: keeping fewer channels saves nothing until the next.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from slimkit.errors import ConfigError, check_choice
from slimkit.latency.spec import LayerSpec
from slimkit.latency.table import LatencyTable

SWEEP_HW = {"conv": 28, "depthwise": 28}  # input height = width of a sweep layer
SWEEP_QUANTILE = 0.1


@dataclass(frozen=True, order=True)
class SweepKind:
    """A layer kind whose latency is swept: conv k×k, depthwise k×k, or linear."""

    kind: str
    kernel: int = 1

    def __post_init__(self) -> None:
        check_choice("SweepKind.kind", self.kind, ("conv", "depthwise", "linear"))

    @property
    def name(self) -> str:
        k = f"{self.kernel}x{self.kernel}"
        return {"conv": f"conv{k}", "depthwise": f"dw{k}", "linear": "linear"}[self.kind]

    def spec(self, c: int) -> LayerSpec:
        if self.kind == "linear":
            return LayerSpec("linear", c, c)
        k, hw = self.kernel, SWEEP_HW[self.kind]
        groups = c if self.kind == "depthwise" else 1
        return LayerSpec(self.kind, c, c, (k, k), (1, 1), (k // 2, k // 2), groups, hw, hw)


def sweep_counts(n_max: int, extra: tuple[int, ...] = ()) -> list[int]:
    """Channel counts a sweep measures up to n_max: every 8 to 256, every 16 to 1024, every 32
    beyond (tile sizes are 16 – 64: coarser steps at large counts still show them), and the
    `extra` counts (the groups' own sizes)."""
    out = set(range(8, min(n_max, 256) + 1, 8)) | set(range(272, min(n_max, 1024) + 1, 16))
    out |= set(range(1056, n_max + 1, 32))
    out |= {n for n in extra if 1 <= n <= n_max}
    return sorted(out) or [n_max]


def isotonic(values: list[float]) -> list[float]:
    """The closest non-decreasing sequence in least squares (pool adjacent violators)."""
    blocks: list[list[float]] = []  # [mean, weight]
    for v in values:
        blocks.append([v, 1.0])
        while len(blocks) > 1 and blocks[-2][0] > blocks[-1][0]:
            (m2, w2), (m1, w1) = blocks[-2], blocks.pop()
            blocks[-1] = [(m2 * w2 + m1 * w1) / (w2 + w1), w2 + w1]
    out: list[float] = []
    for m, w in blocks:
        out += [m] * int(w)
    return out


def plateau_ends(counts: list[int], values: list[float], tol: float) -> list[int]:
    """The last count of each plateau of a latency curve: where it rises by more than `tol`
    (relative) over the plateau's first value. The largest count always ends one."""
    if not counts:
        return []
    smooth = isotonic(values)
    ends, start = [], smooth[0]
    for i in range(len(counts) - 1):
        if smooth[i + 1] > start * (1 + tol) + 1e-12:
            ends.append(counts[i])
            start = smooth[i + 1]
    return ends + [counts[-1]]


class ChannelSteps:
    """Channel-count sweeps on one runtime / precision / batch, cached per machine."""

    def __init__(self, runtime: str = "openvino", precision: str = "int8", batch: int = 1,
                 threads: int = 2, cache_dir: str | os.PathLike | None = None,
                 tol: float = 0.04) -> None:
        if not 0 < tol < 1:
            raise ConfigError(f"ChannelSteps.tol={tol!r} must be a fraction in (0, 1)")
        self.table = LatencyTable(batch, threads, runtime, precision, cache_dir,
                                  quantile=SWEEP_QUANTILE)
        self.tol = tol

    def describe(self) -> str:
        t = self.table
        return (f"{t.runtime} {t.version} {t.precision}, batch {t.batch}, {t.threads} threads "
                f"on {t.target.describe()} (cache key {t.target.key()})")

    def curve(self, kind: SweepKind, n_max: int, extra: tuple[int, ...] = ()) -> dict[int, float]:
        """{channels: kernel ms} of `kind` at every sweep count ≤ n_max (measures the missing
        ones; an interrupted sweep resumes from the cache)."""
        counts = sweep_counts(n_max, extra)
        return dict(zip(counts, self.table.lookup([kind.spec(c) for c in counts]), strict=True))

    def measure(self, kinds: dict[SweepKind, tuple[int, tuple[int, ...]]]) -> None:
        """Measure every kind's sweep in one go (kind → (n_max, extra counts))."""
        specs = [k.spec(c) for k, (n, extra) in sorted(kinds.items())
                 for c in sweep_counts(n, extra)]
        self.table.measure(specs)

    def allowed(self, kinds: list[tuple[SweepKind, int]], n: int) -> list[int]:
        """The channel counts ≤ n worth keeping for a group whose channels feed `kinds`
        ((kind, how many layers of it)): the ends of the summed curve's plateaus, and n."""
        if not kinds:
            return [n]
        counts = sweep_counts(n, (n,))
        total = [0.0] * len(counts)
        for kind, times in kinds:
            c = self.curve(kind, n, (n,))
            ys = [c[x] for x in counts]
            scale = sorted(ys)[len(ys) // 2] or 1e-9
            total = [t + times * y / scale for t, y in zip(total, ys, strict=True)]
        return plateau_ends(counts, total, self.tol)


__all__ = ["ChannelSteps", "SweepKind", "isotonic", "plateau_ends", "sweep_counts"]
