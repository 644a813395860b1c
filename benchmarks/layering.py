"""The shape of the code, in numbers: rooms, cycles, upward imports, slimkit imports inside
functions, lines per room — for the tree at ROOT (default: this checkout).

    python benchmarks/layering.py [ROOT] [--legacy]

--legacy maps the module paths of the layout before the layering step (io/, bench/'s latency
model) onto today's rooms, so an old checkout is measured against the same map.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests import layers  # noqa: E402

LEGACY = {"io.atomic": "atomic", "io.artifact": "artifact", "io": "artifact",
          "bench.layer_latency": "latency", "bench.layer_sessions": "latency",
          "bench.layer_graphs": "latency", "bench.layer_spec": "latency",
          "bench.channel_steps": "latency", "bench.latency_cost": "quant.mixed_precision"}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("root", nargs="?", default=str(Path(__file__).resolve().parents[1]))
    ap.add_argument("--legacy", action="store_true")
    args = ap.parse_args()
    if args.legacy:
        plain = layers.room_of

        def room_of(module: str) -> str:
            rel = module.removeprefix("slimkit.")
            for old, new in sorted(LEGACY.items(), key=lambda kv: -len(kv[0])):
                if rel == old or rel.startswith(old + "."):
                    return plain("slimkit." + new)
            return plain(module)
        layers.room_of = room_of
    imports = layers.scan(Path(args.root) / "slimkit")
    rooms = layers.lines_per_room(imports)
    up = layers.upward(imports)
    cyc = layers.cycles(imports)
    print(f"tree: {args.root}{' (legacy paths mapped)' if args.legacy else ''}")
    print(f"modules {len(imports.lines)}, rooms {len(rooms)}, lines {sum(rooms.values())}")
    print(f"cycles {len(cyc)}: " + "; ".join(" ↔ ".join(c) for c in cyc))
    print(f"upward imports {len(up)}")
    for a, b in up:
        print(f"  {a} → {b}")
    print(f"slimkit imports inside functions {len(imports.inner_sites)}")
    print("lines per room: " + ", ".join(f"{r} {n}" for r, n in sorted(
        rooms.items(), key=lambda kv: (layers.level_of(kv[0]), kv[0]))))


if __name__ == "__main__":
    main()
