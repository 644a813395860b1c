"""Artifact size and load time: sk.save / sk.load for each flow, on DigitsCNN and ResNet-18.

state bytes    everything in the model's state_dict (packed integer codes as stored)
artifact       weights.safetensors + manifest.json on disk (the directory form)
archive        the same saved as one .zip (small members deflated, large ones stored)
load s         sk.load in this process, median of 5 (rebuild the structure + read + checksum)
zip load s     the same from the archive
fresh s        a new Python process: import slimkit + sk.load + one forward
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import torch  # noqa: E402

import slimkit as sk  # noqa: E402
from slimkit.graph.modules import state_bytes  # noqa: E402
from slimkit.latency.machine import machine_line  # noqa: E402
from slimkit.models import DigitsCNN, resnet18  # noqa: E402

FRESH = """
import sys, time, torch
t = time.perf_counter()
import slimkit as sk
m = sk.load(sys.argv[1])
with torch.no_grad():
    m(torch.randn(1, *map(int, sys.argv[2].split(","))))
print(time.perf_counter() - t)
"""


def flows(model, x):
    calib = [x]
    yield "fp32", model
    yield "w8a8 static", sk.quantize(model, sk.QuantConfig.w8a8(), calib=calib, progress=False)
    yield "dynamic int8", sk.quantize(model, sk.QuantConfig.dynamic())
    yield "w4 weight-only", sk.quantize(model, sk.QuantConfig.weight_only(4))
    yield "w4 k-means", sk.quantize(model, sk.QuantConfig.nonuniform("kmeans"))
    pruned = sk.prune(model, sk.PruneConfig(ratio=0.5), x[:1])
    yield "pruned 50%", pruned
    yield "pruned 50% + w8a8", sk.quantize(pruned, sk.QuantConfig.w8a8(), calib=calib,
                                           progress=False)


def table(name: str, factory: str, shape: tuple[int, ...]) -> None:
    torch.manual_seed(0)
    model = {"digits": DigitsCNN, "resnet18": resnet18}[name]().eval()
    x = torch.randn(4, *shape)
    print(f"\n## {name}")
    head = (f"{'flow':<20}{'state bytes':>14}{'artifact bytes':>16}{'overhead':>10}"
            f"{'archive bytes':>15}{'overhead':>10}"
            f"{'save s':>8}{'load s':>8}{'zip load s':>12}{'fresh s':>9}{'identical':>11}")
    print(head + "\n" + "-" * len(head))
    with tempfile.TemporaryDirectory() as d:
        for flow, m in flows(model, x):
            path = Path(d) / flow.replace(" ", "_").replace("%", "")
            t = time.perf_counter()
            sk.save(m, path, factory=factory)
            save_s = time.perf_counter() - t
            archive = sk.save(m, path.with_name(path.name + ".zip"), factory=factory)
            loads, zip_loads = [], []
            for _ in range(5):
                t = time.perf_counter()
                back = sk.load(path)
                loads.append(time.perf_counter() - t)
                t = time.perf_counter()
                back_zip = sk.load(archive)
                zip_loads.append(time.perf_counter() - t)
            same = torch.equal(back(x), m(x)) and torch.equal(back_zip(x), m(x))
            art = sum(f.stat().st_size for f in path.iterdir())
            st = state_bytes(m)
            fresh = subprocess.run([sys.executable, "-c", FRESH, str(path),
                                    ",".join(map(str, shape))], capture_output=True, text=True,
                                   check=True).stdout.strip()
            ok = "yes" if same else "NO"
            zb = archive.stat().st_size
            print(f"{flow:<20}{st:>14,}{art:>16,}{art / st - 1:>9.1%}{zb:>15,}{zb / st - 1:>9.1%}"
                  f"{save_s:>8.2f}{statistics.median(loads):>8.2f}"
                  f"{statistics.median(zip_loads):>12.2f}{float(fresh):>9.2f}{ok:>11}")


def main() -> None:
    print(machine_line(torch.get_num_threads()))
    torch.set_num_threads(2)
    table("digits", "slimkit.models:DigitsCNN", (1, 8, 8))
    table("resnet18", "slimkit.models:resnet18", (3, 224, 224))


if __name__ == "__main__":
    main()
