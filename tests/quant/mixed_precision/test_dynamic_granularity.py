"""Dynamic int8 with per-token activations only where per-tensor hurts: the layer that sees
outlier tokens is the one chosen, the mix beats all-per-tensor, and it exports to ORT."""

import numpy as np
import onnx
import pytest
import torch
from torch import nn

import slimkit as sk
from slimkit.deploy.runtimes import session
from slimkit.quant.mixed_precision.dynamic import per_token_where_needed


class TwoPaths(nn.Module):
    """`raw` sees the input as it is (a few tokens 50× larger); `normed` sees it after a
    LayerNorm, so no outliers."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.raw, self.ln, self.normed = nn.Linear(32, 16), nn.LayerNorm(32), nn.Linear(32, 16)

    def forward(self, x):
        return self.raw(x) + 20 * self.normed(self.ln(x))


def _tokens(seed: int) -> torch.Tensor:
    x = torch.randn(4, 12, 32, generator=torch.Generator().manual_seed(seed))
    x[:, 0] *= 50  # one outlier token per sequence (a [CLS]-like row)
    return x


def _rel_err(q, model, x) -> float:
    with torch.no_grad():
        return float((q(x) - model(x)).norm() / model(x).norm())


def test_the_layer_with_outlier_tokens_is_made_per_token(tmp_path):
    model = TwoPaths().eval()
    cfg, choice = per_token_where_needed(model, [_tokens(s) for s in range(3)], layers=1)
    assert choice.layers == ("raw",)
    assert choice.sqnr_db["raw"] < choice.sqnr_db["normed"]
    q = sk.quantize(model, cfg)
    plan = {e.name: e.spec.describe() for e in sk.record_of(q).plan.quantized()}
    assert "per-token" in plan["raw"] and "per-token" not in plan["normed"]
    x = _tokens(7)  # not in the ranking data
    flat = sk.quantize(model, sk.QuantConfig.dynamic(activations="per_tensor"))
    assert _rel_err(q, model, x) < 0.5 * _rel_err(flat, model, x)
    sk.export(q, x, tmp_path / "m.onnx")
    ops = [n.op_type for n in onnx.load(tmp_path / "m.onnx").graph.node]
    assert ops.count("DynamicQuantizeMatMul") == 1 and ops.count("MatMulInteger") == 1
    with torch.no_grad():
        sim = q(x).numpy()
    out = session(tmp_path / "m.onnx", "ort").run(x)
    assert np.abs(out - sim).max() <= 2e-3 * np.abs(sim).max()  # as the per-tensor export


@pytest.mark.parametrize("layers", [-1, 3, 1.5])
def test_layer_count_outside_the_model_is_refused(layers):
    with pytest.raises(sk.ConfigError, match=r"per_token_layers=.* \[0, 2\]"):
        per_token_where_needed(TwoPaths(), [_tokens(0)], layers=layers)
