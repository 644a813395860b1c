"""ResNet-18 / MobileNetV2 at 50% MACs (L1 uniform and global, classifier kept): MACs,
params and a digest of every pruned tensor shape, for the slimkit checkout at ROOT — run it
on two checkouts to see that a change to the dependency graph leaves these architectures
(and so benchmarks/pruning.py's speedups) exactly as they were.

    python benchmarks/arch_cnn_shapes.py ROOT
"""

import hashlib
import json
import sys
import warnings

warnings.simplefilter("ignore")
root = sys.argv[1]
sys.path.insert(0, root)
import torch  # noqa: E402

import slimkit as sk  # noqa: E402
from slimkit.models import mobilenet_v2, resnet18  # noqa: E402

assert sk.__file__.startswith(root), sk.__file__
out = {}
for name, fn, cls in (("resnet18", resnet18, "fc"),
                      ("mobilenet_v2", mobilenet_v2, "classifier.1")):
    torch.manual_seed(0)
    m, x = fn().eval(), torch.randn(1, 3, 224, 224)
    for scope in ("uniform", "global"):
        cfg = sk.PruneConfig(target_macs=0.5, scope=scope, rules=(sk.PruneRule(cls, skip=True),))
        small = sk.prune(m, cfg, x)
        rep = sk.record_of(small).report
        shapes = str([list(p.shape) for p in small.parameters()]).encode()
        out[f"{name}-{scope}"] = [rep.macs_after, rep.params_after,
                                  hashlib.md5(shapes).hexdigest()[:12]]
print(json.dumps(out))
