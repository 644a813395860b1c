"""Dependency-graph build time (torch.export + channel rules) for ResNet-18/50 and MobileNetV2
shapes at 1×3×224×224: median of 5 builds after one warm-up, 2 threads."""

from __future__ import annotations

import statistics
import time

import torch

from slimkit.graph.deps import DependencyGraph
from slimkit.latency.machine import machine_line
from slimkit.models import mobilenet_v2, resnet18, resnet50


def main() -> None:
    print(machine_line(2))  # where this ran: CPU, ISA, runtime versions
    torch.set_num_threads(2)
    x = torch.randn(1, 3, 224, 224)
    print(f"{'model':<14}{'build s (median of 5)':>24}{'groups':>8}{'GMACs':>8}{'params M':>10}")
    for f in (resnet18, mobilenet_v2, resnet50):
        m = f().eval()
        DependencyGraph.build(m, x)  # warm-up: first export pays one-off import costs
        times, g = [], None
        for _ in range(5):
            t = time.perf_counter()
            g = DependencyGraph.build(m, x)
            times.append(time.perf_counter() - t)
        print(f"{f.__name__:<14}{statistics.median(times):>24.2f}{len(g.groups()):>8}"
              f"{g.macs() / 1e9:>8.2f}{g.params() / 1e6:>10.2f}")


if __name__ == "__main__":
    main()
