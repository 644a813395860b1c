"""sk.save / sk.load on the new families: quantized recurrent layers and embeddings, pruned
attention (nn.MultiheadAttention, hand-written), pruned recurrent nets — bit-identical, and
rebuilt from the recorded structure alone (no data)."""

import pytest
import torch

import slimkit as sk
from tests.arch import zoo


def _dyn(m, x):
    return sk.quantize(m, sk.QuantConfig.dynamic())


def _w8a8(m, x):
    return sk.quantize(m, sk.QuantConfig.w8a8(), calib=[x], progress=False)


def _prune(m, x, t=0.5):
    return sk.prune(m, sk.PruneConfig(target_macs=t, scope="global"), x)


CASES = {
    "lstm-dynamic": ("lstm", _dyn),
    "lstm-pruned-dynamic": ("lstm", lambda m, x: _dyn(_prune(m, x), x)),
    "bigru-pruned-w8a8": ("bigru", lambda m, x: _w8a8(_prune(m, x), x)),
    "vit-pruned-dynamic": ("vit", lambda m, x: _dyn(_prune(m, x), x)),
    "se_net-pruned-w8a8": ("se_concat_grouped_mha", lambda m, x: _w8a8(_prune(m, x, 0.3), x)),
    "hand_attention-pruned": ("hand_attention", _prune),
}
FACTORY = {"lstm": "lstm", "bigru": "bigru", "vit": "vit", "se_concat_grouped_mha": "se_net",
           "hand_attention": "hand_attention"}


@pytest.mark.parametrize("case", sorted(CASES))
def test_save_load_bit_identical(case, tmp_path):
    family, make = CASES[case]
    model, x = zoo.build(family)
    m = make(model, x)
    sk.save(m, tmp_path / case, factory=f"tests.arch.zoo:{FACTORY[family]}")
    again = sk.load(tmp_path / case)
    with torch.no_grad():
        torch.testing.assert_close(again(x), m(x), rtol=0, atol=0)
    assert again.state_dict().keys() == m.state_dict().keys()
