"""Pareto fronts and hypervolume over (metric, costs) points, pure functions on plain lists."""

from __future__ import annotations

from collections.abc import Sequence


def _as_min(point: Sequence[float], directions: Sequence[str]) -> list[float]:
    return [-v if d == "maximize" else v for v, d in zip(point, directions, strict=True)]


def dominates(a: Sequence[float], b: Sequence[float], directions: Sequence[str]) -> bool:
    """a is at least as good as b everywhere and better somewhere."""
    am, bm = _as_min(a, directions), _as_min(b, directions)
    return all(x <= y for x, y in zip(am, bm, strict=True)) and am != bm


def pareto_front(points: Sequence[Sequence[float]], directions: Sequence[str]) -> list[int]:
    """Indices of the non-dominated points, in input order (duplicates all kept)."""
    return [i for i, p in enumerate(points)
            if not any(dominates(q, p, directions) for j, q in enumerate(points) if j != i)]


def hypervolume(points: Sequence[Sequence[float]], directions: Sequence[str],
                reference: Sequence[float]) -> float:
    """Volume dominated by `points` and bounded by `reference` (a point worse than every
    interesting one: e.g. accuracy 90 %, latency at the constraint). Points not strictly
    better than the reference in every objective add nothing. Exact (slicing), for the small
    fronts a search produces."""
    ref = _as_min(reference, directions)
    pts = [_as_min(p, directions) for p in points]
    pts = [p for p in pts if all(x < r for x, r in zip(p, ref, strict=True))]
    return _hv(pts, ref)


def _hv(pts: list[list[float]], ref: list[float]) -> float:
    if not pts:
        return 0.0
    if len(ref) == 1:
        return ref[0] - min(p[0] for p in pts)
    pts = sorted(pts, key=lambda p: p[-1])  # sweep the last objective, slices of the rest
    vol = 0.0
    for i, p in enumerate(pts):
        top = pts[i + 1][-1] if i + 1 < len(pts) else ref[-1]
        if top > p[-1]:
            vol += (top - p[-1]) * _hv([q[:-1] for q in pts[:i + 1]], ref[:-1])
    return vol
