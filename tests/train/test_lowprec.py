import torch
from torch.utils.data import TensorDataset

import slimkit as sk
from slimkit.data.digits import digits_tensors
from slimkit.models import DigitsCNN
from slimkit.quant.modules import QuantLayer
from slimkit.train import TrainConfig, Trainer
from slimkit.train.lowprec import BF16Weights, ProgressivePrecision, round_bf16


def test_stochastic_bf16_rounding_is_unbiased_and_on_the_grid():
    x = torch.full((200_000,), 1.0 + 2**-10)  # between the bf16 neighbours 1 and 1 + 2^-7
    y = round_bf16(x, generator=torch.Generator().manual_seed(0))
    assert set(y.unique().tolist()) == {1.0, 1.0 + 2**-7}
    assert torch.equal(y.to(torch.bfloat16).float(), y)
    assert abs(y.mean().item() - x[0].item()) < 2e-5
    assert torch.equal(round_bf16(x, stochastic=False), torch.ones_like(x))  # RTN: always down
    special = torch.tensor([float("inf"), float("-inf"), 0.0, -3.0])
    assert torch.equal(round_bf16(special), special)


def test_small_updates_survive_stochastic_rounding_but_not_nearest():
    results = {}
    for stochastic in (False, True):
        w = torch.nn.Parameter(torch.ones(10_000))
        opt = torch.optim.SGD([w], lr=1e-3)
        cb = BF16Weights(stochastic, seed=0)
        holder = type("T", (), {"model": torch.nn.ParameterList([w])})()
        for _ in range(100):  # each step moves w by 1e-3, under half a bf16 step (2^-8)
            w.grad = torch.ones_like(w)
            opt.step()
            cb.on_step_end(holder)
        results[stochastic] = w.detach().mean().item()
    assert results[False] == 1.0  # every update rounded away
    assert abs(results[True] - 0.9) < 0.01  # the expected trajectory, 1 − 100·1e-3


def test_progressive_precision_goes_fp32_bf16_int8_and_converts():
    train, test = digits_tensors()
    torch.manual_seed(0)
    example = torch.stack([train[i][0] for i in range(32)])
    prog = ProgressivePrecision(bf16_from=2, qat_from=4, qat_config=sk.QuantConfig.w8a8(),
                                example_inputs=example)
    t = Trainer(DigitsCNN(width=0.5), TrainConfig(epochs=6, lr=3e-3, progress=False), train,
                test, callbacks=[prog])
    t.fit()
    assert prog.phases == [(2, "bf16"), (4, "int8 QAT")]
    assert any(isinstance(m, QuantLayer) for m in t.model.modules())
    assert t.evaluate() > 97.0
    q = sk.convert(t.model)
    x = torch.stack([test[i][0] for i in range(64)])
    assert sk.sqnr(t.model.eval()(x), q(x)) > 25


def test_bf16_weights_callback_keeps_parameters_on_the_grid(tmp_path):
    g = torch.Generator().manual_seed(0)
    data = TensorDataset(torch.randn(64, 1, 8, 8, generator=g),
                         torch.randint(0, 10, (64,), generator=g))
    t = Trainer(DigitsCNN(width=0.25), TrainConfig(epochs=1, batch_size=16, progress=False),
                data, callbacks=[BF16Weights()])
    t.fit()
    for p in t.model.parameters():
        assert torch.equal(p.detach().to(torch.bfloat16).float(), p.detach())
