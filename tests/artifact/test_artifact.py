"""sk.save / sk.load: every flow × plain / pruned / pruned+quantized on three architectures,
loaded in a fresh process, bit-identical; and every way an artifact can be bad, refused."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

import slimkit as sk
from slimkit.artifact import MANIFEST, WEIGHTS, ArtifactError
from slimkit.deploy.kernels import to_kernels
from slimkit.graph.modules import set_submodule
from slimkit.sparse import SparseLinear, sparsify
from tests.artifact import nets

ROOT = Path(__file__).parents[2]

QUANT = {
    "float": None,
    "w8a8": lambda m, x: sk.quantize(m, sk.QuantConfig.w8a8(), calib=[x], progress=False),
    "dynamic": lambda m, x: sk.quantize(m, sk.QuantConfig.dynamic()),
    "w4": lambda m, x: sk.quantize(m, sk.QuantConfig.weight_only(4)),
    "kmeans": lambda m, x: sk.quantize(m, sk.QuantConfig.nonuniform("kmeans")),
    "ternary": lambda m, x: sk.quantize(m, sk.QuantConfig.nonuniform("ternary", 2)),
    "qat": lambda m, x: sk.convert(sk.prepare_qat(m, sk.QuantConfig.w8a8(), x)),
    "lsq": lambda m, x: sk.convert(sk.prepare_qat(m, sk.QuantConfig.w4a8().with_qat(lsq=True),
                                                  x)),
}
PRUNE = {
    "plain": None,
    "pruned": lambda m, x, name: sk.prune(
        m, sk.PruneConfig(granularity="head" if name == "transformer" else "channel",
                          ratio=0.5), x[:1]),
}


def _input(name: str) -> torch.Tensor:
    return torch.randn(8, *nets.INPUTS[name], generator=torch.Generator().manual_seed(1))


FAST = {("digits", "pruned", "w8a8"), ("digits", "pruned", "qat"),
        ("resnet", "plain", "w8a8"), ("resnet", "pruned", "qat"),
        ("transformer", "plain", "dynamic"), ("transformer", "pruned", "w8a8")}
ARCHIVED = {("digits", "pruned", "w8a8"), ("transformer", "pruned", "w8a8")}  # as one .zip


def _variants(full: bool):
    """Every flow on the plain digits CNN, pruned + quantized and the other nets in a few
    combinations (every combination in the slow run)."""
    for model in ("digits", "resnet", "transformer"):
        for p in PRUNE:
            for q in QUANT:
                if full or (model, p) == ("digits", "plain") or (model, p, q) in FAST:
                    yield model, p, q


def _save_all(root: Path, full: bool):
    """Every variant saved, plus its outputs in this process."""
    outputs, dirs = {}, []
    for model, p, q in _variants(full):
        m, x = getattr(nets, model)(), _input(model)
        if PRUNE[p] is not None:
            m = PRUNE[p](m, x, model)
        if QUANT[q] is not None:
            m = QUANT[q](m, x)
        name = f"{model}-{p}-{q}"
        path = root / (name + (".zip" if (model, p, q) in ARCHIVED else ""))
        sk.save(m, path, factory=f"tests.artifact.nets:{model}")
        with torch.no_grad():
            outputs[name] = m(x)
        dirs.append(str(path))
    return outputs, dirs


def _load_elsewhere(root: Path, dirs: list[str]) -> dict:
    from safetensors.torch import load_file

    inputs = root / "inputs.safetensors"
    save_file({m: _input(m) for m in nets.INPUTS}, str(inputs))
    out = root / "outputs.safetensors"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    r = subprocess.run([sys.executable, str(Path(__file__).with_name("load_all.py")), str(out),
                        str(inputs), *dirs], capture_output=True, text=True, env=env,
                       timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    return load_file(str(out))


@pytest.mark.parametrize("full", [False, pytest.param(True, marks=pytest.mark.slow)],
                         ids=["common", "all"])
def test_every_flow_loads_bit_identically_in_a_fresh_process(tmp_path, full):
    outputs, dirs = _save_all(tmp_path, full)
    loaded = _load_elsewhere(tmp_path, dirs)
    assert set(loaded) == set(outputs)
    for name, y in outputs.items():
        assert torch.equal(loaded[name], y), name


def test_sparse_kernels_masks_and_students_round_trip(tmp_path):
    m, x = nets.digits(), _input("digits")
    cases = {
        "unstructured": sk.prune(m, sk.PruneConfig(granularity="unstructured", ratio=0.7),
                                 x[:1]),
        "nm": sk.prune(m, sk.PruneConfig(granularity="nm", n=2, m=4), x[:1]),
        "kernels": to_kernels(sk.quantize(m, sk.QuantConfig.dynamic())),
        "student": nets.digits(width=0.5),
    }
    for name, model in cases.items():
        kw = {"factory": "tests.artifact.nets:digits", "kwargs": {"width": 0.5}} \
            if name == "student" else {"factory": "tests.artifact.nets:digits"}
        sk.save(model, tmp_path / name, **kw)
        back = sk.load(tmp_path / name)
        assert torch.equal(back(x), model(x)), name
    assert sk.record_of(sk.load(tmp_path / "unstructured")).masks.keys() == \
        sk.record_of(cases["unstructured"]).masks.keys()


def test_sparse_linear_layers_round_trip(tmp_path):
    x = torch.randn(3, 64, generator=torch.Generator().manual_seed(2))
    sp = sk.prune(nets.mlp(), sk.PruneConfig(granularity="unstructured", ratio=0.97), x[:1])
    sparse, _ = sparsify(sp, batch=1, max_density=1.0, runs=3)
    for name in ("0", "2"):  # CSR for both, whatever this machine's timing decided
        if not isinstance(sparse.get_submodule(name), SparseLinear):
            set_submodule(sparse, name, SparseLinear(sparse.get_submodule(name)))
    sk.record_of(sparse).steps[-1:] = []  # drop the timing-dependent step, record the forced one
    sk.record_of(sparse).add("sparsify", {"layers": {"0": {"format": "csr"},
                                                     "2": {"format": "csr"}}})
    sk.save(sparse, tmp_path / "sparse", factory="tests.artifact.nets:mlp")
    back = sk.load(tmp_path / "sparse")
    assert isinstance(back[0], SparseLinear) and back[0].weight.layout == torch.sparse_csr
    assert torch.equal(back(x), sparse(x))


def test_a_template_stands_in_for_a_factory(tmp_path):
    def fresh():
        return torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(),
                                   torch.nn.Linear(16, 4)).eval()

    x = torch.randn(5, 8)
    q = sk.quantize(fresh(), sk.QuantConfig.w8a8(), calib=[x], progress=False)
    with pytest.raises(ArtifactError, match="template="):
        sk.save(q, tmp_path / "q")  # Sequential() rebuilds no layers
    assert not (tmp_path / "q").exists()  # refused before anything was written
    sk.save(q, tmp_path / "q", template=fresh())
    with pytest.raises(ArtifactError, match="model="):
        sk.load(tmp_path / "q")
    template = fresh()
    before = {k: v.clone() for k, v in template.state_dict().items()}
    back = sk.load(tmp_path / "q", model=template)
    assert torch.equal(back(x), q(x))
    assert all(torch.equal(v, template.state_dict()[k]) for k, v in before.items())  # untouched


def test_the_deployable_onnx_file_rides_along(tmp_path):
    from slimkit.deploy import session

    m, x = nets.resnet(), _input("resnet")
    q = sk.quantize(m, sk.QuantConfig.w8a8(), calib=[x], progress=False)
    path = sk.save(q, tmp_path / "r", factory="tests.artifact.nets:resnet", example_inputs=x[:2])
    manifest = json.loads((path / MANIFEST).read_text())
    assert manifest["deploy"] == {"onnx": "model.onnx"}
    out = session(path / "model.onnx").run((x.numpy(),))
    assert sk.sqnr(q(x), torch.from_numpy(out)) > 35  # the runtime's int8 ≈ the simulation
    state = sum(t.numel() * t.element_size() for t in q.state_dict().values())
    assert (path / WEIGHTS).stat().st_size < 1.05 * state + 8192  # packed bytes, small header
