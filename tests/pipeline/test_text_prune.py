"""A recipe on unlabelled data: an encoder's attention heads pruned by the loss change of
masking each (1 − cosine to its own outputs), recovered by distilling from the original,
dynamic int8, exported to ONNX Runtime."""


import pytest

import slimkit as sk
from tests.pipeline.conftest import compressed
from tests.pipeline.recipes import write

ENCODER = """
model: {factory: "tests.arch.zoo:bert_tiny"}
data: {factory: "tests.pipeline.textdata:loaders", batch_size: 16, calib_batches: 2}
eval: {metric: cosine}
budget: {max_drop: 1.0}
seed: 0
stages:
  - prune: {granularity: head, ratio: 0.5, importance: mask, finetune: {epochs: 1}}
  - quantize: {preset: dynamic, activations: per_tensor, per_token_layers: 2}
  - export: {runtimes: [ort]}
"""


@pytest.mark.slow  # ≈ 10 s: the fast suite keeps to 3 minutes
def test_heads_pruned_by_masking_on_unlabelled_data_then_int8(tmp_path):
    report = compressed(write(tmp_path, ENCODER), tmp_path / "run")
    assert [s["kind"] for s in report["stages"]] == ["prune", "quantize", "export"]
    assert not any(s["skipped"] for s in report["stages"])
    model = sk.load(tmp_path / "run" / "model")
    attn = [m for n, m in model.named_modules() if n.endswith("attention.self")]
    assert len(attn) == 2 and all(a.num_attention_heads == 2 for a in attn)
    assert all(a.all_head_size == 2 * a.attention_head_size for a in attn)
    assert 0.0 < report["final"]["metric"] <= 1.0
    assert list((tmp_path / "run").rglob("*.onnx"))
    layers = report["stages"][1]["info"]["plan"]["layers"]
    linear = [e for e in layers if e["type"] == "Linear"]
    per_token = [e["name"] for e in linear if "per-token" in e["scheme"]]
    assert len(per_token) == 2 < len(linear)  # the two most sensitive; the rest per-tensor
