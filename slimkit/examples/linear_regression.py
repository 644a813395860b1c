"""Example: the first worked example of the seed articles — linear regression, quantized.

scikit-learn's diabetes data (442 patients, 10 standardized features, a disease-progression
target), a least-squares nn.Linear, then its weights quantized by slimkit to 8 and 4 bits:
test mean squared error side by side.

    python -m slimkit.examples.linear_regression
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

import slimkit as sk


@dataclass
class Row:
    scheme: str
    test_mse: float
    vs_fp32: float  # relative change of the test MSE
    weight_sqnr_db: float
    weight_bytes: int


def data(seed: int = 0):
    from sklearn.datasets import load_diabetes
    from sklearn.model_selection import train_test_split

    x, y = load_diabetes(return_X_y=True)
    xtr, xte, ytr, yte = train_test_split(x, y, test_size=0.25, random_state=seed)
    mean, std = xtr.mean(0), xtr.std(0)
    f = lambda a: torch.tensor((a - mean) / std, dtype=torch.float32)  # noqa: E731
    t = lambda a: torch.tensor(a, dtype=torch.float32).unsqueeze(1)  # noqa: E731
    return f(xtr), t(ytr), f(xte), t(yte)


def least_squares(x: torch.Tensor, y: torch.Tensor) -> nn.Linear:
    """The exact least-squares fit (with intercept) as an nn.Linear(10, 1)."""
    a = torch.cat([x, torch.ones(len(x), 1)], 1).double()  # (N, 11)
    sol = torch.linalg.lstsq(a, y.double()).solution  # (11, 1)
    lin = nn.Linear(x.shape[1], 1)
    with torch.no_grad():
        lin.weight.copy_(sol[:-1].T)
        lin.bias.copy_(sol[-1])
    return lin.eval()


def run(seed: int = 0) -> list[Row]:
    xtr, ytr, xte, yte = data(seed)
    fp32 = least_squares(xtr, ytr)

    def row(name: str, model: nn.Module) -> Row:
        with torch.no_grad():
            mse = float(((model(xte) - yte) ** 2).mean())
            w = model.packed() if hasattr(model, "packed") else model.weight
        return Row(name, mse, 0.0, sk.sqnr(fp32.weight, w), sk.graph.modules.state_bytes(model))

    rows = [row("fp32", fp32)]
    for bits in (8, 4):
        q = sk.quantize(fp32, sk.QuantConfig.weight_only(bits))  # per output channel
        rows.append(row(f"int{bits} weights", q))
    base = rows[0].test_mse
    for r in rows:
        r.vs_fp32 = r.test_mse / base - 1
    return rows


def main() -> None:
    rows = run()
    print("linear regression on scikit-learn's diabetes data (111 test patients)")
    print(f"{'scheme':<14}{'test MSE':>11}{'vs fp32':>10}{'weight SQNR':>13}{'state bytes':>13}")
    for r in rows:
        sq = "exact" if r.weight_sqnr_db == float("inf") else f"{r.weight_sqnr_db:.1f} dB"
        print(f"{r.scheme:<14}{r.test_mse:>11.1f}{r.vs_fp32:>+10.2%}{sq:>13}"
              f"{r.weight_bytes:>13,}")


if __name__ == "__main__":
    main()
