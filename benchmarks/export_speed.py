"""sk.export's time with and without the decomposition shortcut (slimkit/deploy/fast_decompose.py).

Each model is exported both ways in interleaved rounds (warm-up first; the registry and the
exporter are warm in both), medians and their ratio; the two files' ONNX Runtime outputs are
compared bit for bit. Float and w8a8 of the digits CNN and of the test zoo's families; with
--torchvision (run in .venv-zoo, where torchvision imports) ResNet-18, MobileNetV2, ResNet-50
at 224², which take seconds per export, so fewer rounds there.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import statistics
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.arch.zoo

import slimkit as sk  # noqa: E402
import slimkit.deploy.fast_decompose as fd  # noqa: E402
import slimkit.deploy.onnx_export as oe  # noqa: E402
from slimkit.deploy.onnx_export import to_onnx  # noqa: E402
from slimkit.latency.machine import machine_line  # noqa: E402


def _models(torchvision: bool):
    from slimkit.data.digits import digits_tensors
    from slimkit.models import DigitsCNN
    from tests.arch import zoo

    x = digits_tensors()[0][:32][0]
    torch.manual_seed(0)
    yield "digits CNN", DigitsCNN().eval(), x
    for name in ("mlp", "convnext", "gpt_block", "hand_attention", "bert_tiny", "vit"):
        m, ex = zoo.build(name)
        yield name, m, ex
    if torchvision:
        import torchvision as tv

        for name in ("resnet18", "mobilenet_v2", "resnet50"):
            torch.manual_seed(0)
            yield name, tv.models.get_model(name, weights=None).eval(), torch.randn(1, 3, 224,
                                                                                    224)


def _once(model, x, fast: bool) -> tuple[float, object, bool]:
    taken = []
    apply = fd._apply
    fd._apply = lambda gm, inplace: (taken.append(1), apply(gm, inplace))
    keep = oe.skip_needless_decomposition
    if not fast:
        oe.skip_needless_decomposition = contextlib.nullcontext
    try:
        t = time.perf_counter()
        proto = to_onnx(model, x)
        return time.perf_counter() - t, proto, bool(taken)
    finally:
        fd._apply, oe.skip_needless_decomposition = apply, keep


def _outputs(proto, x):
    s = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    xs = x if isinstance(x, tuple) else (x,)
    return s.run(None, {i.name: v.numpy() for i, v in zip(s.get_inputs(), xs, strict=True)})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--torchvision", action="store_true")
    a = ap.parse_args()
    warnings.simplefilter("ignore")
    logging.disable(logging.WARNING)
    torch.set_num_threads(2)
    print(machine_line(2))
    print(f"{'model':<16}{'precision':>10}{'shortcut':>10}{'full s':>9}{'shortcut s':>12}"
          f"{'faster':>8}  outputs")
    for name, model, x in _models(a.torchvision):
        calib = [x] if isinstance(x, torch.Tensor) and x.is_floating_point() else None
        variants = [("fp32", model)]
        if calib is not None:
            variants.append(("w8a8", sk.quantize(model, sk.QuantConfig.w8a8(), calib)))
        for prec, m in variants:
            rounds = a.rounds if not name.startswith(("resnet", "mobilenet")) else 5
            _once(m, x, True), _once(m, x, False)  # warm-up
            times: dict[bool, list[float]] = {True: [], False: []}
            files: dict[bool, tuple] = {}
            for i in range(rounds):
                for use in ((True, False) if i % 2 else (False, True)):
                    dt, proto, taken = _once(m, x, use)
                    times[use].append(dt)
                    files.setdefault(use, (proto, taken))
            f, s = statistics.median(times[True]), statistics.median(times[False])
            same = all(np.array_equal(u, v) for u, v in zip(
                _outputs(files[True][0], x), _outputs(files[False][0], x), strict=True))
            print(f"{name:<16}{prec:>10}{'taken' if files[True][1] else 'no':>10}{s:>9.3f}"
                  f"{f:>12.3f}{s / f:>7.2f}×  {'identical' if same else 'DIFFER'}", flush=True)
    print(f"\n{a.rounds} rounds each (5 for the torchvision models), order alternating; "
          "medians; 'no': the program needs the exporter's re-trace (an op without a "
          "translation, an in-place op on a view, …)")


if __name__ == "__main__":
    main()
