"""Prune every torchvision classification model, and BERT / ViT / GPT-2 built from transformers
configs, to 50% channels; check forward, shapes, reload; say what was cut and what was frozen.

Run by `make test-zoo` in its own venv (.venv-zoo: torch==2.14.1 + torchvision==0.29.1, both
on this machine's disk, + transformers). Random weights (no downloads); 1×3×224×224 input (299
for inception_v3), 1×128 tokens for the language models. Each model: sk.prune(ratio=0.5) with
unknown ops raising; on a DependencyError it is retried with unknown_ops='freeze' and counted as
"frozen around <op>". Prints one line per model, with --tables a table per model of the layers
cut and kept (indices folded: `encoder.layer.*.attention.self.query`, `layer*.*.conv*`) and
the reasons for what was kept whole, then the pass rate; exits non-zero if any model fails.
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
import time
import traceback
from pathlib import Path

import torch
from torch import nn

import slimkit as sk
from slimkit.graph.deps import DependencyError
from slimkit.pruning.report import PruneReport

SIZE = {"inception_v3": 299}


# ---- models ---------------------------------------------------------------------------------
class Tensor(nn.Module):
    """A transformers model's output as one tensor (logits, or the last hidden state)."""

    def __init__(self, model: nn.Module, arg: str = "input_ids"):
        super().__init__()
        self.model, self.arg = model, arg

    def forward(self, x):
        out = self.model(**{self.arg: x})
        return out.logits if hasattr(out, "logits") else out.last_hidden_state


def bert_base() -> nn.Module:
    from transformers import BertConfig, BertModel  # BERT-base geometry: 12 × 768, 12 heads

    return Tensor(BertModel(BertConfig(attn_implementation="sdpa"), add_pooling_layer=False))


def vit_base_hf() -> nn.Module:
    from transformers import ViTConfig, ViTModel  # ViT-B/16 at 224

    return Tensor(ViTModel(ViTConfig(attn_implementation="sdpa"), add_pooling_layer=False),
                  "pixel_values")


def gpt2_small() -> nn.Module:
    from transformers import GPT2Config, GPT2LMHeadModel  # GPT-2 124M, tied embeddings

    return Tensor(GPT2LMHeadModel(GPT2Config(attn_implementation="sdpa")))


TRANSFORMERS = {"bert_base (transformers)": (bert_base, "tokens"),
                "vit_base (transformers)": (vit_base_hf, "image"),
                "gpt2_small (transformers)": (gpt2_small, "tokens")}


def _model(name: str) -> tuple[nn.Module, torch.Tensor, nn.Module | None]:
    """(model, example input, a fresh template for sk.load or None when a factory names it)."""
    torch.manual_seed(0)
    if name in TRANSFORMERS:
        build, kind = TRANSFORMERS[name]
        x = (torch.randint(0, 1000, (1, 128)) if kind == "tokens"
             else torch.randn(1, 3, 224, 224))
        return build().eval(), x, build().eval()
    import torchvision

    model = torchvision.models.get_model_builder(name)(weights=None).eval()
    return model, torch.randn(1, 3, SIZE.get(name, 224), SIZE.get(name, 224)), None


# ---- one model ------------------------------------------------------------------------------
def check(name: str, tmp: Path) -> tuple[str, str, PruneReport]:
    model, x, template = _model(name)
    status = "ok"
    try:
        small = sk.prune(model, sk.PruneConfig(ratio=0.5), x)
        rep = sk.record_of(small).report
    except DependencyError as e:
        small = sk.prune(model, sk.PruneConfig(ratio=0.5, unknown_ops="freeze"), x)
        rep = sk.record_of(small).report
        status = f"frozen ({str(e).split(' is not')[0]})"
    with torch.no_grad():
        out, ref = small(x), model(x)
    assert out.shape == ref.shape, f"shape {tuple(out.shape)} != {tuple(ref.shape)}"
    assert rep.params_after < rep.params_before, "nothing was removed"
    path = tmp / re.sub(r"\W+", "_", name)
    if template is None:
        import torchvision

        ctor = torchvision.models.get_model_builder(name)
        sk.save(small, path, factory=f"torchvision.models:{ctor.__name__}")
        again = sk.load(path)
    else:
        sk.save(small, path, template=template)
        again = sk.load(path, model=_model(name)[2])
    with torch.no_grad():
        torch.testing.assert_close(again(x), out, rtol=0, atol=0)
    return status, (f"params ×{rep.params_ratio:.2f}, MACs ×{rep.macs_ratio:.2f}, "
                    f"{rep.groups_pruned}/{rep.groups} groups"), rep


def table(rep: PruneReport) -> str:
    """The layers folded over their indices: how many, how many cut, channels, params."""
    rows: dict[str, list] = {}
    for la in rep.layers:
        key = re.sub(r"(?<=[.a-z])\d+(?=\.|$)", "*", la.module)  # layer4.1.conv2 → layer4.*.conv*
        r = rows.setdefault(key, [0, 0, 0, 0, set()])
        r[0] += 1
        r[1] += la.params_after < la.params_before or la.macs_after < la.macs_before
        r[2] += la.params_before
        r[3] += la.params_after
        if la.channels:
            r[4].add(la.channels)
    w = max([len(k) for k in rows] + [5])
    lines = [f"    {'layer':<{w}}  {'n':>3}  {'cut':>3}  {'params':>25}  channels"]
    for k, (n, c, pb, pa, ch) in rows.items():
        chans = ", ".join(sorted(ch)[:3]) + (" …" if len(ch) > 3 else "")
        lines.append(f"    {k:<{w}}  {n:>3}  {c:>3}  {pb:>11,} → {pa:>11,}  {chans}")
    lines += [f"    kept whole: {n if len(n) < 300 else n[:300] + ' …'}" for n in rep.notes] or [
        "    kept whole: nothing"]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--only", nargs="*", default=None)
    ap.add_argument("--tables", action="store_true", help="a table per model: cut and kept")
    a = ap.parse_args()
    torch.set_num_threads(2)
    names = a.only
    if names is None:
        import torchvision

        names = torchvision.models.list_models(module=torchvision.models)
        try:
            import transformers  # noqa: F401
            names += list(TRANSFORMERS)
        except ImportError:
            print("transformers is not installed: the BERT / ViT / GPT-2 blocks are skipped")
    results = {}
    with tempfile.TemporaryDirectory() as d:
        for name in names:
            t = time.perf_counter()
            rep = None
            try:
                status, info, rep = check(name, Path(d))
            except Exception as e:  # noqa: BLE001 — the zoo reports every failure and goes on
                status = "FAIL"
                info = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"[:160]
                traceback.print_exc(limit=2, file=sys.stderr)
            results[name] = status
            print(f"{name:<26} {status:<40} {info}  ({time.perf_counter() - t:.1f} s)",
                  flush=True)
            if a.tables and rep is not None:
                print(table(rep), flush=True)
    ok = sum(s == "ok" for s in results.values())
    frozen = sum(s.startswith("frozen") for s in results.values())
    print(f"\npass rate: {ok}/{len(results)} pruned with every op known, {frozen} more with "
          f"some channels frozen around unknown ops, {len(results) - ok - frozen} failed "
          f"(torch {torch.__version__})")
    sys.exit(1 if ok + frozen < len(results) else 0)


if __name__ == "__main__":
    main()
