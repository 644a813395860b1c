"""The architecture zoo: one tiny model per family users bring (issue 15), built here — not
imported from a model library — so every test runs offline in seconds.

Each `build(name)` returns (model in eval, example input); `FAMILIES` lists them all.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def cbr(cin, cout, k=3, groups=1):
    return nn.Sequential(nn.Conv2d(cin, cout, k, 1, k // 2, groups=groups, bias=False),
                         nn.BatchNorm2d(cout), nn.ReLU())


class ViT(nn.Module):
    """Patches → nn.TransformerEncoder (the fused fast path applies in eval) → mean → head."""

    def __init__(self, dim=32, heads=8, depth=2):
        super().__init__()
        self.patch = nn.Conv2d(3, dim, 4, 4)
        layer = nn.TransformerEncoderLayer(dim, heads, 2 * dim, dropout=0.0, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, depth, enable_nested_tensor=False)
        self.head = nn.Linear(dim, 10)

    def forward(self, x):  # (B, 3, 16, 16)
        t = self.patch(x).flatten(2).transpose(1, 2)  # (B, 16, dim)
        return self.head(self.encoder(t).mean(1))


class LSTMText(nn.Module):
    """Embedding → bidirectional LSTM → mean over time → Linear."""

    def __init__(self, vocab=100, dim=16, hidden=48, layers=1):
        super().__init__()
        self.emb = nn.Embedding(vocab, dim)
        self.rnn = nn.LSTM(dim, hidden, layers, batch_first=True, bidirectional=True)
        self.fc = nn.Linear(2 * hidden, 4)

    def forward(self, tokens):  # (B, T) int64
        h, _ = self.rnn(self.emb(tokens))  # (B, T, 2H)
        return self.fc(h.mean(1))


class BiGRUText(nn.Module):
    """Embedding → 2-layer bidirectional GRU → last step → Linear."""

    def __init__(self, vocab=100, dim=16, hidden=16):
        super().__init__()
        self.emb = nn.Embedding(vocab, dim)
        self.rnn = nn.GRU(dim, hidden, 2, batch_first=True, bidirectional=True)
        self.fc = nn.Linear(2 * hidden, 4)

    def forward(self, tokens):
        h, _ = self.rnn(self.emb(tokens))
        return self.fc(h[:, -1])


class UNet(nn.Module):
    """Down, up with ConvTranspose2d, skip concatenated with the upsampled path."""

    def __init__(self):
        super().__init__()
        self.enc1, self.enc2 = cbr(3, 16), nn.Sequential(nn.MaxPool2d(2), cbr(16, 32))
        self.up = nn.ConvTranspose2d(32, 16, 2, 2)
        self.dec = cbr(32, 16)
        self.out = nn.Conv2d(16, 2, 1)

    def forward(self, x):  # (B, 3, 16, 16)
        e1 = self.enc1(x)
        d = self.dec(torch.cat([self.up(self.enc2(e1)), e1], 1))  # skip: 16 + 16
        return self.out(d)


class HandAttention(nn.Module):
    """Attention written by hand: packed qkv viewed into (3, heads, head_dim), SDPA."""

    def __init__(self, dim=32, heads=4):
        super().__init__()
        self.heads, self.head_dim = heads, dim // heads
        self.qkv, self.proj = nn.Linear(dim, 3 * dim), nn.Linear(dim, dim)
        self.norm = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 2 * dim), nn.GELU(), nn.Linear(2 * dim, dim))
        self.emb, self.head = nn.Linear(8, dim), nn.Linear(dim, 3)

    def forward(self, x):  # (B, T, 8)
        h = self.emb(x)
        b, t, _ = h.shape
        qkv = self.qkv(self.norm(h)).view(b, t, 3, self.heads, self.head_dim)
        q, k, v = qkv.permute(2, 0, 3, 1, 4)  # each (B, H, T, D)
        o = F.scaled_dot_product_attention(q, k, v).transpose(1, 2)
        h = h + self.proj(o.reshape(b, t, self.heads * self.head_dim))
        return self.head((h + self.mlp(h)).mean(1))


class MLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(20, 64), nn.ReLU(), nn.Linear(64, 32), nn.ReLU(),
                                 nn.Linear(32, 5))

    def forward(self, x):
        return self.net(x)


class AudioConv1d(nn.Module):
    """Conv1d over time (a keyword-spotting style net)."""

    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Conv1d(8, 32, 5, padding=2), nn.BatchNorm1d(32), nn.ReLU(),
                                  nn.Conv1d(32, 32, 3, padding=1, groups=32), nn.ReLU(),
                                  nn.Conv1d(32, 48, 1), nn.ReLU())
        self.fc = nn.Linear(48, 6)

    def forward(self, x):  # (B, 8, T)
        return self.fc(self.body(x).mean(-1))


class ConvNeXtBlock(nn.Module):
    """Depthwise 7×7 → LayerNorm over channels (permuted) → MLP ×4 → layer scale → residual."""

    def __init__(self, dim=24):
        super().__init__()
        self.stem = nn.Conv2d(3, dim, 2, 2)
        self.dw = nn.Conv2d(dim, dim, 7, padding=3, groups=dim)
        self.norm = nn.LayerNorm(dim)
        self.pw1, self.pw2 = nn.Linear(dim, 4 * dim), nn.Linear(4 * dim, dim)
        self.gamma = nn.Parameter(torch.full((dim,), 0.5))
        self.head = nn.Linear(dim, 5)

    def forward(self, x):
        x = self.stem(x)
        y = self.norm(self.dw(x).permute(0, 2, 3, 1))  # (B, H, W, C)
        y = self.gamma * self.pw2(F.gelu(self.pw1(y)))
        x = x + y.permute(0, 3, 1, 2)
        return self.head(x.mean((2, 3)))


class SEConcatGroupedMHA(nn.Module):
    """The issue's mixed net: SE block, two branches concatenated (32 + 16 channels) into a
    grouped conv (groups = 4), a chunk (GLU-style gate), then nn.MultiheadAttention + MLP."""

    def __init__(self):
        super().__init__()
        self.stem = cbr(3, 32)
        self.squeeze, self.excite = nn.Conv2d(32, 8, 1), nn.Conv2d(8, 32, 1)
        self.b1, self.b2 = cbr(32, 32), cbr(32, 16, 1)
        self.grouped = cbr(48, 64, 3, groups=4)
        self.proj = nn.Conv2d(32, 32, 1)
        self.attn = nn.MultiheadAttention(32, 4, batch_first=True)
        self.ln = nn.LayerNorm(32)
        self.mlp = nn.Sequential(nn.Linear(32, 64), nn.GELU(), nn.Linear(64, 32))
        self.head = nn.Linear(32, 10)

    def forward(self, x):  # (B, 3, 16, 16)
        s = self.stem(x)
        s = s * torch.sigmoid(self.excite(F.relu(self.squeeze(s.mean((2, 3), keepdim=True)))))
        y = self.grouped(torch.cat([self.b1(s), self.b2(s)], 1))
        a, b = y.chunk(2, 1)
        t = self.proj(a * torch.sigmoid(b)).flatten(2).transpose(1, 2)  # (B, HW, 32)
        t = t + self.attn(t, t, t, need_weights=False)[0]
        t = t + self.mlp(self.ln(t))
        return self.head(t.mean(1))


class GPTBlock(nn.Module):
    """A GPT-style decoder block from a config dict: causal SDPA, pre-LN, tied embeddings."""

    def __init__(self, vocab=64, dim=32, heads=4, ctx=16):
        super().__init__()
        self.n_head, self.n_embd = heads, dim
        self.wte, self.wpe = nn.Embedding(vocab, dim), nn.Embedding(ctx, dim)
        self.ln1, self.ln2, self.lnf = nn.LayerNorm(dim), nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.c_attn, self.c_proj = nn.Linear(dim, 3 * dim), nn.Linear(dim, dim)
        self.fc, self.fc_out = nn.Linear(dim, 4 * dim), nn.Linear(4 * dim, dim)
        self.lm_head = nn.Linear(dim, vocab, bias=False)

    def forward(self, idx):  # (B, T)
        b, t = idx.shape
        x = self.wte(idx) + self.wpe(torch.arange(t, device=idx.device))
        q, k, v = self.c_attn(self.ln1(x)).split(self.n_embd, dim=2)
        q, k, v = (z.view(b, t, self.n_head, -1).transpose(1, 2) for z in (q, k, v))
        o = F.scaled_dot_product_attention(q, k, v, is_causal=True).transpose(1, 2)
        x = x + self.c_proj(o.reshape(b, t, -1))
        x = x + self.fc_out(F.gelu(self.fc(self.ln2(x))))
        return self.lm_head(self.lnf(x))


def bert_tiny():
    """A BERT-style encoder built from a transformers config (no weights downloaded)."""
    from transformers import BertConfig, BertModel

    cfg = BertConfig(vocab_size=100, hidden_size=32, num_hidden_layers=2,
                     num_attention_heads=4, intermediate_size=64, max_position_embeddings=32,
                     attn_implementation="sdpa")
    return BertEncoder(BertModel(cfg, add_pooling_layer=False))


def gpt2_tiny():
    """GPT-2 from a transformers config: `Conv1D` layers (weights stored in × out), fused
    c_attn split into q / k / v, tied input and output embeddings, causal SDPA."""
    from transformers import GPT2Config, GPT2LMHeadModel

    cfg = GPT2Config(vocab_size=64, n_embd=64, n_layer=2, n_head=8, n_positions=16,
                     bos_token_id=0, eos_token_id=0, attn_implementation="sdpa")
    return Logits(GPT2LMHeadModel(cfg))


def vit_hf_tiny():
    """ViT from a transformers config: conv patch embedding, CLS token, position table."""
    from transformers import ViTConfig, ViTModel

    cfg = ViTConfig(image_size=16, patch_size=4, num_channels=3, hidden_size=32,
                    num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
                    attn_implementation="sdpa")
    return Hidden(ViTModel(cfg, add_pooling_layer=False), "pixel_values")


class Logits(nn.Module):
    def __init__(self, lm):
        super().__init__()
        self.lm = lm

    def forward(self, input_ids):
        return self.lm(input_ids=input_ids).logits


class Hidden(nn.Module):
    """A transformers encoder's mean last hidden state (a tensor, not a ModelOutput)."""

    def __init__(self, model, arg="input_ids"):
        super().__init__()
        self.model, self.arg = model, arg

    def forward(self, x):
        return self.model(**{self.arg: x}).last_hidden_state.mean(1)


class BertEncoder(nn.Module):
    def __init__(self, bert):
        super().__init__()
        self.bert = bert

    def forward(self, input_ids):
        return self.bert(input_ids=input_ids).last_hidden_state.mean(1)


def _tokens(vocab, shape, seed=0):
    return torch.randint(0, vocab, shape, generator=torch.Generator().manual_seed(seed))


def _randn(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


FAMILIES = {
    "vit": (ViT, lambda: _randn(2, 3, 16, 16)),
    "lstm": (LSTMText, lambda: _tokens(100, (2, 12))),
    "bigru": (BiGRUText, lambda: _tokens(100, (2, 12))),
    "unet": (UNet, lambda: _randn(2, 3, 16, 16)),
    "hand_attention": (HandAttention, lambda: _randn(2, 6, 8)),
    "mlp": (MLP, lambda: _randn(4, 20)),
    "audio_conv1d": (AudioConv1d, lambda: _randn(2, 8, 32)),
    "convnext": (ConvNeXtBlock, lambda: _randn(2, 3, 16, 16)),
    "se_concat_grouped_mha": (SEConcatGroupedMHA, lambda: _randn(2, 3, 16, 16)),
    "gpt_block": (GPTBlock, lambda: _tokens(64, (2, 12))),
    "bert_tiny": (bert_tiny, lambda: _tokens(100, (2, 12))),
    "gpt2_tiny": (gpt2_tiny, lambda: _tokens(64, (2, 12))),
    "vit_hf_tiny": (vit_hf_tiny, lambda: _randn(2, 3, 16, 16)),
}


def build(name: str):
    """(model with random BN statistics, in eval; example input)."""
    factory, example = FAMILIES[name]
    torch.manual_seed(0)
    m = factory()
    for mod in m.modules():
        if isinstance(mod, nn.modules.batchnorm._BatchNorm):
            mod.running_mean.uniform_(-0.5, 0.5)
            mod.running_var.uniform_(0.5, 2.0)
            nn.init.uniform_(mod.weight, 0.5, 1.5)
    return m.eval(), example()


# factories the artifact tests name (sk.save(..., factory="tests.arch.zoo:<name>"))
def vit():
    return build("vit")[0]


def lstm():
    return build("lstm")[0]


def bigru():
    return build("bigru")[0]


def se_net():
    return build("se_concat_grouped_mha")[0]


def hand_attention():
    return build("hand_attention")[0]
