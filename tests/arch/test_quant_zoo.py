"""Quantization on every family of the zoo: static (w8a8) and dynamic → ONNX Runtime, parity
with slimkit's simulation, and a plan that names every layer left float and why."""

import numpy as np
import pytest
import torch

import slimkit as sk
from slimkit.deploy.runtimes import session
from tests.arch.zoo import FAMILIES, build

CONFIGS = {
    "w8a8": lambda m, x: sk.quantize(m, sk.QuantConfig.w8a8(), calib=[x], progress=False),
    "dynamic": lambda m, x: sk.quantize(m, sk.QuantConfig.dynamic()),
    "dynamic-per-tensor": lambda m, x: sk.quantize(
        m, sk.QuantConfig.dynamic(activations="per_tensor")),
}
FAST = {("vit", "dynamic"), ("vit", "w8a8"), ("lstm", "dynamic"), ("bigru", "w8a8"),
        ("unet", "w8a8"), ("hand_attention", "dynamic-per-tensor"), ("mlp", "dynamic"),
        ("audio_conv1d", "w8a8"), ("convnext", "dynamic"), ("se_concat_grouped_mha", "w8a8"),
        ("gpt_block", "dynamic"), ("bert_tiny", "dynamic-per-tensor"), ("gpt2_tiny", "w8a8"),
        ("vit_hf_tiny", "dynamic")}


def _cases():
    for name in sorted(FAMILIES):
        for cfg in CONFIGS:
            marks = () if (name, cfg) in FAST else (pytest.mark.slow,)
            yield pytest.param(name, cfg, marks=marks, id=f"{name}-{cfg}")


@pytest.mark.parametrize(("name", "cfg"), list(_cases()))
def test_quantize_export_and_parity(name, cfg, tmp_path):
    model, x = build(name)
    if name == "unet" and cfg.startswith("dynamic"):  # convolutions only: nothing dynamic
        with pytest.raises(sk.ConfigError, match="quantizes no layer of UNet.*Conv2d"):
            CONFIGS[cfg](model, x)
        return
    q = CONFIGS[cfg](model, x)
    with torch.no_grad():
        sim, ref = q(x).numpy(), model(x).numpy()
    sk.export(q, x, tmp_path / "q.onnx")
    out = session(tmp_path / "q.onnx", "ort").run(x)
    scale = np.abs(sim).max()
    # static: ORT requantizes between integer ops (a few steps apart); dynamic per-token: the
    # same codes; per-tensor: ORT divides where slimkit multiplies by 1/s (rare ties differ)
    tol = {"w8a8": 0.05, "dynamic": 1e-5, "dynamic-per-tensor": 2e-2}[cfg] * scale
    assert np.abs(out - sim).max() <= tol, (name, cfg, np.abs(out - sim).max(), scale)
    assert np.isfinite(sim).all() and np.abs(sim - ref).max() <= 0.25 * np.abs(ref).max()
    plan = sk.record_of(q).plan
    names = {e.name for e in plan.entries}
    weighted = {n for n, m in model.named_modules()
                if any(p.dim() >= 2 for p in m.parameters(recurse=False))}
    assert weighted <= names  # every layer with a weight matrix is in the plan …
    for e in plan.entries:
        if e.spec is None:
            assert e.reason  # … and each one left float says why


def test_plan_says_why_attention_and_recurrent_layers_get_what_they_get():
    model, x = build("vit")
    plan = sk.record_of(sk.quantize(model, sk.QuantConfig.dynamic())).plan
    by = {e.name: e for e in plan.entries}
    attn = by["encoder.layers.0.self_attn"]
    assert attn.spec is None and "MultiheadAttention" in attn.reason
    assert by["encoder.layers.0.self_attn.out_proj"].spec is None
    assert by["encoder.layers.0.linear1"].spec.input.dynamic
    model, x = build("lstm")
    plan = sk.record_of(sk.quantize(model, sk.QuantConfig.w8a8(), calib=[x],
                                    progress=False)).plan
    by = {e.name: e for e in plan.entries}
    assert by["rnn"].spec.weight is not None and by["rnn"].spec.input is None
    assert "recurrence" in by["rnn"].reason and "indices" in by["emb"].reason


def test_quantized_layers_stand_in_for_the_float_ones():
    model, x = build("vit")
    q = sk.quantize(model, sk.QuantConfig.dynamic())
    lin = q.encoder.layers[0].linear1
    assert lin.in_features == 32 and lin.out_features == 64  # read from the wrapped layer
    assert isinstance(lin.weight, torch.Tensor) and lin.weight.shape == (64, 32)
    torch.testing.assert_close(lin.bias, model.encoder.layers[0].linear1.bias)
    step = lin.packed.params.reshape(-1, 1)  # int8 per-channel: within half a step
    assert (lin.weight - model.encoder.layers[0].linear1.weight).abs().le(step / 2 + 1e-7).all()
    # PyTorch's fused encoder fast path (eval + no_grad) reads linear.weight and would skip
    # the activation quantizers: it must not run, so both modes compute the simulation
    with torch.no_grad():
        fast = q(x)
    torch.testing.assert_close(q(x).detach(), fast, rtol=0, atol=0)
    assert not torch.allclose(fast, model(x), atol=1e-6)  # and it is quantized


def test_recurrent_state_dict_holds_packed_weights_and_float_biases():
    model, x = build("lstm")
    q = sk.quantize(model, sk.QuantConfig.dynamic())
    keys = set(q.state_dict())
    assert "rnn.packed.weight_ih_l0.packed" in keys and "rnn.layer.bias_ih_l0" in keys
    assert "rnn.layer.weight_ih_l0" not in keys  # the float copy is gone
    assert q.rnn.hidden_size == 48 and q.rnn.batch_first  # attributes of the wrapped LSTM
    w = q.rnn.weights()["weight_hh_l0_reverse"]
    ref = model.rnn.weight_hh_l0_reverse
    assert (w - ref).abs().max() <= ref.abs().amax(1).max() / 127 / 2 + 1e-7
