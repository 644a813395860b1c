"""The search's latency table: the per-layer table of bench/, calibrated on networks of the
space being searched before the first candidate is costed.

Σ of lone layer kernels is not a network's run: the run adds the call, the ops outside the
table and the cost of reading weights that are not in cache, and those differ between
families (measured here: MobileNetV2-like nets at batch 1 ran in 0.55–0.75× Σ of their lone
kernels, digits CNNs at batch 64 in 1.0×). So the table is calibrated per space —
`calibrate` random candidates, measured end to end and layer by layer in one interleaved run,
three times, pooled by median — and the fit is cached with the table (per machine, runtime,
batch, threads and space): a search on a warm cache, or a worker started after the first,
pays nothing.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random

from slimkit.latency.table import LatencyTable
from slimkit.search.config import SearchConfig
from slimkit.search.space import Space

log = logging.getLogger("slimkit.search")


def calibration_scope(space: Space) -> str:
    """The space's name and a digest of its genes: two spaces that share a name but not their
    choices are calibrated apart."""
    digest = hashlib.sha1(json.dumps(space.to_dict(), sort_keys=True).encode()).hexdigest()
    return f"space:{space.name}:{digest[:10]}"


def latency_table(config: SearchConfig, space: Space):
    """The layer table latency costs come from (None when no objective or constraint asks for
    latency), calibrated on this space unless config.latency.calibrate is 0."""
    if not config.needs_latency:
        return None

    lc = config.latency
    table = LatencyTable(batch=lc.batch, threads=lc.threads, runtime=lc.runtime,
                         cache_dir=lc.cache_dir,
                         scope=calibration_scope(space) if lc.calibrate else "")
    if lc.calibrate and not table.calibrated:
        nets = _random_networks(space, lc.calibrate, config.seed)
        log.info("calibrating the latency table on %d networks of space '%s'", len(nets),
                 space.name)
        table.calibrate(nets)
    return table


def _random_networks(space: Space, n: int, seed: int) -> dict:
    """Up to n distinct random candidates that build (a builder that fails for some encodings
    is skipped there, as the search skips it), in eval mode with the space's example."""
    rng, nets, tried = random.Random(seed), {}, set()
    for _ in range(20 * n):
        enc = space.random(rng)
        if enc in tried:
            continue
        tried.add(enc)
        try:
            nets[f"{space.name} {enc}"] = (space.build_model(enc).eval(), space.example())
        except Exception as e:  # noqa: BLE001 — the trial loop reports such encodings
            log.debug("calibration: encoding %s does not build (%s)", enc, e)
        if len(nets) == n:
            break
    return nets


def calibration_note(table) -> str | None:
    """One line for the report: how latency was predicted, and how well."""
    if table is None:
        return None
    info = table.calibration_info
    if info is None:
        return (f"latency: Σ of the layer table's kernels ({table.runtime}, batch "
                f"{table.batch}, {table.threads} threads), uncalibrated")
    loo = info.get("loo_error")
    err = f"; leave-one-out error {loo:.1%}" if loo is not None else ""
    return (f"latency: layer table ({table.runtime}, batch {table.batch}, {table.threads} "
            f"threads) calibrated on {info.get('networks', '?')} networks of the space measured "
            f"end to end: {info['scale']:.3f} × Σ kernels + {info['per_mb'] * 1e3:.1f} µs/MB "
            f"+ {info['per_layer'] * 1e3:.1f} µs/layer + {info['base'] * 1e3:.1f} µs{err}")
