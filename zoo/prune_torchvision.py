"""Prune every torchvision classification model to 50% channels; check forward, shapes, reload.

Run by `make test-zoo` in its own venv (.venv-zoo: torch==2.14.1 + torchvision==0.29.1, both
on this machine's disk). Random weights (no downloads); 1×3×224×224 input (299 for
inception_v3). Each model: sk.prune(ratio=0.5) with unknown ops raising; on a
DependencyError it is retried with unknown_ops='freeze' and counted as "frozen around <op>".
Prints one line per model and the pass rate; exits non-zero if any model fails outright.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import traceback
from pathlib import Path

import torch
import torchvision

import slimkit as sk
from slimkit.graph.deps import DependencyError

SIZE = {"inception_v3": 299}


def check(name: str, tmp: Path) -> tuple[str, str]:
    torch.manual_seed(0)
    ctor = torchvision.models.get_model_builder(name)
    model = ctor(weights=None).eval()
    x = torch.randn(1, 3, SIZE.get(name, 224), SIZE.get(name, 224))
    status = "ok"
    try:
        small, rep = sk.prune(model, sk.PruneConfig(ratio=0.5), x)
    except DependencyError as e:
        small, rep = sk.prune(model, sk.PruneConfig(ratio=0.5, unknown_ops="freeze"), x)
        status = f"frozen ({str(e).split(' is not')[0]})"
    with torch.no_grad():
        out, ref = small(x), model(x)
    assert out.shape == ref.shape, f"shape {tuple(out.shape)} != {tuple(ref.shape)}"
    assert rep.params_after < rep.params_before, "nothing was removed"
    sk.save(small, tmp / name, factory=f"torchvision.models:{ctor.__name__}")
    again = sk.load(tmp / name)
    with torch.no_grad():
        torch.testing.assert_close(again(x), out, rtol=0, atol=0)
    return status, (f"params ×{rep.params_ratio:.2f}, MACs ×{rep.macs_ratio:.2f}, "
                    f"{rep.groups_pruned}/{rep.groups} groups")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--only", nargs="*", default=None)
    a = ap.parse_args()
    torch.set_num_threads(2)
    names = a.only or torchvision.models.list_models(module=torchvision.models)
    results = {}
    with tempfile.TemporaryDirectory() as d:
        for name in names:
            t = time.perf_counter()
            try:
                status, info = check(name, Path(d))
            except Exception as e:  # noqa: BLE001 — the zoo reports every failure and goes on
                status = "FAIL"
                info = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"[:160]
                traceback.print_exc(limit=2, file=sys.stderr)
            results[name] = status
            print(f"{name:<24} {status:<40} {info}  ({time.perf_counter() - t:.1f} s)",
                  flush=True)
    ok = sum(s == "ok" for s in results.values())
    frozen = sum(s.startswith("frozen") for s in results.values())
    print(f"\npass rate: {ok}/{len(results)} pruned with every op known, {frozen} more with "
          f"some channels frozen around unknown ops, {len(results) - ok - frozen} failed "
          f"(torch {torch.__version__}, torchvision {torchvision.__version__})")
    sys.exit(1 if ok + frozen < len(results) else 0)


if __name__ == "__main__":
    main()
