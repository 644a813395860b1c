"""Depth pruning: which modules are residual blocks, a block that computes nothing goes first and
changes nothing, targets are met and counted as the dependency graph counts them, the artifact
restores the structure (alone and with channel pruning), and bad requests are named."""


import pytest
import torch

import slimkit as sk
from slimkit.graph.deps import DependencyGraph
from slimkit.models import mobilenet_v2, resnet18
from slimkit.pruning.depth import Skip, residual_blocks, skip_losses
from tests.pipeline.conftest import compressed
from tests.pipeline.recipes import write
from tests.pruning.nets import Chain, MobileNetish, Residual

X32 = torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(0))


def _mbv2():
    torch.manual_seed(0)
    m = mobilenet_v2(10).train()
    with torch.no_grad():  # BN statistics as after training: activations of a sane size
        for _ in range(3):
            m(torch.randn(16, 3, 32, 32))
    return m.eval()


def test_the_blocks_are_the_modules_that_add_their_input():
    # a block with a downsample adds a computed skip; a chain has no add
    assert residual_blocks(Residual().eval(), X32) == ["blocks.0", "blocks.2"]
    assert residual_blocks(MobileNetish().eval(), X32) == ["blocks.0", "blocks.1"]
    assert residual_blocks(Chain().eval(), X32[..., :16, :16]) == []


@pytest.mark.slow  # ≈ 10 s: two real networks exported
def test_the_blocks_of_mobilenet_v2_and_resnet18():
    m = _mbv2()
    assert residual_blocks(m, X32) == sorted(
        f"features.{i}" for i, b in enumerate(m.features) if getattr(b, "use_res", False))
    # layer1 (a stage) also maps x to x's shape through an add of its input: innermost only
    assert residual_blocks(resnet18(10).eval(), X32) == [
        "layer1.0", "layer1.1", "layer2.1", "layer3.1", "layer4.1"]


def test_a_block_that_adds_nothing_goes_first_and_the_output_stays():
    torch.manual_seed(0)
    m = MobileNetish().train()
    with torch.no_grad():  # BN statistics as after training; then block 1's branch computes 0
        for _ in range(3):
            m(torch.randn(16, 3, 32, 32))
        m.eval()
        m.blocks[1].body[-1].weight.zero_()
        m.blocks[1].body[-1].bias.zero_()
    small = sk.prune(m, sk.PruneConfig(granularity="depth", ratio=0.5), X32)
    rep = sk.record_of(small).report
    assert [r.module for r in rep.layers] == ["blocks.1"]
    assert isinstance(small.blocks[1], torch.nn.Identity)
    x = torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(small(x), m(x), rtol=1e-5, atol=1e-5)
    # skipping it changes no output bit, so not the loss either; skipping block 0 does
    data = [(torch.randn(8, 3, 32, 32), torch.randint(0, 10, (8,)))]
    losses = skip_losses(m, ["blocks.0", "blocks.1"], data, None)
    assert losses[1] == 0 and losses[0] != 0


def test_a_macs_target_is_met_and_counted_as_the_graph_counts():
    m = MobileNetish().eval()
    small = sk.prune(m, sk.PruneConfig(granularity="depth", target_macs=0.3), X32)
    rep = sk.record_of(small).report
    assert rep.macs_after <= 0.7 * rep.macs_before
    assert rep.macs_after == DependencyGraph.build(small, X32, "freeze").macs()
    assert rep.params_after == sum(p.numel() for p in small.parameters())
    assert rep.groups == 2 and rep.groups_pruned == len(rep.layers) == 1


def test_depth_then_channels_and_channels_then_depth_reload_identically(tmp_path):
    torch.manual_seed(0)
    m, x = Residual().eval(), torch.randn(2, 3, 32, 32)
    depth = sk.PruneConfig(granularity="depth", ratio=0.5)
    chan = sk.PruneConfig(ratio=0.5, round_to=4, rules=(sk.PruneRule("fc", skip=True),))
    for i, (a, b) in enumerate([(depth, chan), (chan, depth)]):
        small = sk.prune(sk.prune(m, a, X32), b, X32).eval()
        back = sk.load(sk.save(small, tmp_path / f"m{i}"))
        assert sum(isinstance(b, torch.nn.Identity) for b in back.blocks) == 1
        assert sum(p.numel() for p in back.parameters()) < 0.5 * sum(
            p.numel() for p in m.parameters())
        with torch.no_grad():
            assert torch.equal(back(x), small(x))


def test_bad_requests_are_named():
    m = MobileNetish().eval()
    with pytest.raises(sk.ConfigError, match="depth.*ranks whole blocks"):
        sk.PruneConfig(granularity="depth", ratio=0.5, importance="taylor")
    with pytest.raises(sk.ConfigError, match="skip=True"):
        sk.prune(m, sk.PruneConfig(granularity="depth", ratio=0.5,
                                   rules=(sk.PruneRule("blocks.0", ratio=0.5),)), X32)
    with pytest.raises(sk.ConfigError, match="residual blocks weigh"):
        sk.prune(m, sk.PruneConfig(granularity="depth", target_macs=0.95), X32)
    with pytest.raises(sk.ConfigError, match="needs data"):
        sk.prune(m, sk.PruneConfig(granularity="depth", ratio=0.5, importance="mask"), X32)
    # a model without residual blocks: nothing can be dropped — an error, not a silent no-op
    with pytest.raises(sk.PruneError, match="reached 0% of its target.*nothing dropped"):
        sk.prune(Chain().eval(), sk.PruneConfig(granularity="depth", ratio=0.5),
                 X32[..., :16, :16])
    small = sk.prune(Chain().eval(), sk.PruneConfig(granularity="depth", ratio=0.5,
                                                         allow_partial=True), X32[..., :16, :16])
    rep = sk.record_of(small).report
    assert rep.groups == 0 and "nothing dropped" in rep.notes[0] and rep.reached == 0


def test_rules_keep_blocks():
    small = sk.prune(MobileNetish().eval(), sk.PruneConfig(
        granularity="depth", ratio=0.99, rules=(sk.PruneRule("blocks.1", skip=True),)), X32)
    rep = sk.record_of(small).report
    assert [r.module for r in rep.layers] == ["blocks.0"]
    assert isinstance(small.blocks[0], torch.nn.Identity)


RESIDUAL = """
model: {factory: "tests.pruning.nets:Residual"}
data: {digits: {size: 16, channels: 3}, batch_size: 64, calib_batches: 2}
eval: {metric: top1}
budget: {max_drop: 100}
seed: 0
stages:
  - prune: {granularity: depth, ratio: 0.5, importance: mask, finetune: {epochs: 1, kd: true}}
  - quantize: {preset: w8a8}
  - export: {runtimes: [ort]}
"""


@pytest.mark.slow  # ≈ 10 s: a source is trained, pruned, quantized, exported
def test_a_recipe_drops_blocks_on_resized_digits(tmp_path):
    report = compressed(write(tmp_path, RESIDUAL), tmp_path / "run")
    dropped = report["stages"][0]["info"]["layers"]
    assert len(dropped) == 1 and dropped[0]["channels"] == "block removed"
    model = sk.load(tmp_path / "run" / "model")
    assert isinstance(model.get_submodule(dropped[0]["module"]), torch.nn.Identity)
    assert model(torch.randn(2, 3, 16, 16)).shape == (2, 10)


def test_encoder_layers_are_blocks_and_drop_with_their_mask_argument(tmp_path):
    from tests.arch.zoo import bert_tiny

    torch.manual_seed(0)
    m, ids = bert_tiny().eval(), torch.randint(0, 100, (2, 16))
    # the layer adds its first argument; its attention output adds one too, but not its first
    assert residual_blocks(m, ids) == ["bert.encoder.layer.0", "bert.encoder.layer.1"]
    small = sk.prune(m, sk.PruneConfig(granularity="depth", ratio=0.5), ids)
    rep = sk.record_of(small).report
    assert rep.groups_pruned == 1 and isinstance(small.get_submodule(rep.layers[0].module), Skip)
    back = sk.load(sk.save(small, tmp_path / "enc", factory="tests.arch.zoo:bert_tiny"))
    with torch.no_grad():
        assert torch.equal(back(ids), small(ids))
    path = sk.export(small, ids, tmp_path / "enc.onnx")
    out = sk.session(path, "ort").run((ids,))
    torch.testing.assert_close(torch.as_tensor(out), small(ids).detach(), rtol=1e-4, atol=1e-4)
