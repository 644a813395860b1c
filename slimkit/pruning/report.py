"""What a pruning run did, per layer and in total — printable and serializable."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field


@dataclass
class LayerReport:
    module: str
    params_before: int
    params_after: int
    macs_before: int
    macs_after: int
    channels: str = ""  # "64 → 48" (output channels), or "50.0% zeros"


@dataclass
class PruneReport:
    granularity: str
    layers: list[LayerReport] = field(default_factory=list)
    params_before: int = 0
    params_after: int = 0
    macs_before: int = 0
    macs_after: int = 0
    groups: int = 0
    groups_pruned: int = 0
    notes: list[str] = field(default_factory=list)
    target: str = ""  # what was asked: "target_macs 0.5", "ratio 0.3"
    reached: float | None = None  # the share of the target removed (1.0: all of it)
    # (removed, asked for) channels or weights: what a ratio target is judged by
    channels_removed: tuple[int, float] = (0, 0.0)

    @property
    def macs_ratio(self) -> float:
        return self.macs_after / max(self.macs_before, 1)

    @property
    def params_ratio(self) -> float:
        return self.params_after / max(self.params_before, 1)

    def to_dict(self) -> dict:
        return asdict(self)

    def __str__(self) -> str:
        w = max([len(r.module) for r in self.layers] + [6])
        lines = [f"{'layer':<{w}}  {'params':>21}  {'MMACs':>17}  channels",
                 "-" * (w + 62)]
        for r in self.layers:
            lines.append(f"{r.module:<{w}}  {r.params_before:>9,} → {r.params_after:>9,}  "
                         f"{r.macs_before / 1e6:>7.2f} → {r.macs_after / 1e6:>7.2f}  "
                         f"{r.channels}")
        lines.append("-" * (w + 62))
        lines.append(f"{'total':<{w}}  {self.params_before:>9,} → {self.params_after:>9,}  "
                     f"{self.macs_before / 1e6:>7.2f} → {self.macs_after / 1e6:>7.2f}  "
                     f"params ×{self.params_ratio:.3f}, MACs ×{self.macs_ratio:.3f}; "
                     f"{self.groups_pruned}/{self.groups} groups cut")
        if self.reached is not None and self.reached < 0.999:
            lines.append(f"reached {self.reached:.0%} of the target ({self.target})")
        lines += [f"note: {n}" for n in self.notes]
        return "\n".join(lines)
