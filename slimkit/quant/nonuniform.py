"""Non-uniform weight quantization: power-of-two, k-means codebooks, binary, ternary.

Each scheme maps a weight to (codes, params) and back; codes are small integers that
packing.py stores in `code_bits` bits. All are pure functions; weights are (out, ...) and
scales are per output channel (axis 0) unless the scheme says per-tensor.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from slimkit.errors import ConfigError, check_choice

KINDS = ("pow2", "kmeans", "binary", "ternary")


@dataclass(frozen=True)
class NonUniformScheme:
    """kind: pow2 (sign · s · 2^-j), kmeans (2^bits-entry codebook per tensor), binary
    (code 1/0 = +/- mean|w| per channel, XNOR-Net), ternary (TWN threshold 0.7 · mean|w|)."""

    kind: str
    bits: int = 4
    seed: int = 0

    def __post_init__(self) -> None:
        check_choice("NonUniformScheme.kind", self.kind, KINDS)
        allowed = {"pow2": range(2, 9), "kmeans": range(1, 9), "binary": [1], "ternary": [2]}
        if self.bits not in allowed[self.kind]:
            raise ConfigError(
                f"NonUniformScheme(kind={self.kind!r}).bits={self.bits} not allowed; "
                f"choose from {list(allowed[self.kind])}"
            )

    @property
    def code_bits(self) -> int:
        return self.bits

    @property
    def qmin(self) -> int:
        """Smallest code, so packing can offset codes to unsigned."""
        return 0 if self.kind in ("kmeans", "binary") else -(2 ** (self.bits - 1))

    def describe(self) -> str:
        return f"{self.kind} {self.bits}-bit"

    def encode(self, w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """weight → (int codes in w's shape, params): params is a per-channel scale
        (pow2, binary, ternary) or the codebook (kmeans)."""
        return _ENCODERS[self.kind](w.detach().float(), self)

    def decode(self, codes: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
        return _DECODERS[self.kind](codes, params, self)


def _per_channel(w: torch.Tensor) -> torch.Tensor:
    return w.reshape(w.shape[0], -1)  # (out, fan_in)


def _bcast(p: torch.Tensor, w_shape) -> torch.Tensor:
    return p.reshape(-1, *([1] * (len(w_shape) - 1)))


def _pow2_encode(w, s: NonUniformScheme):
    # magnitudes {0} ∪ {m · 2^-j : j = 0..L-1}, L = 2^(bits-1) - 1; code = sign · (j + 1)
    levels = 2 ** (s.bits - 1) - 1
    m = _per_channel(w).abs().amax(dim=1).clamp(min=1e-12)
    r = w.abs() / _bcast(m, w.shape)
    j = torch.round(-torch.log2(r.clamp(min=1e-30)))  # rounding in the log domain
    below = r < 2.0 ** -(levels - 1) / 2  # nearer to 0 than to the smallest level
    mag = torch.where(below, torch.zeros_like(j), j.clamp(0, levels - 1) + 1)
    return (torch.sign(w) * mag).to(torch.int32), m


def _pow2_decode(codes, m, s):
    mag = codes.abs().float()
    val = torch.where(mag > 0, 2.0 ** -(mag - 1), torch.zeros_like(mag))
    return torch.sign(codes.float()) * val * _bcast(m, codes.shape)


def _kmeans_encode(w, s: NonUniformScheme, iters: int = 30):
    # Lloyd's algorithm in 1-D with linear initialisation between min and max (Han et al.,
    # Deep Compression: linear init keeps the large-magnitude centroids that matter most).
    flat = w.reshape(-1)
    g = torch.Generator().manual_seed(s.seed)
    if flat.numel() > 65536:  # fit on a seeded sample; assign every weight below
        sample = flat[torch.randperm(flat.numel(), generator=g)[:65536].to(w.device)]
    else:
        sample = flat
    k = 2**s.bits
    c = torch.linspace(float(sample.min()), float(sample.max()), k, device=w.device)
    for _ in range(iters):
        idx = (sample.unsqueeze(1) - c).abs().argmin(dim=1)
        sums = torch.zeros(k, device=w.device).index_add_(0, idx, sample)
        counts = torch.zeros(k, device=w.device).index_add_(0, idx, torch.ones_like(sample))
        c = torch.where(counts > 0, sums / counts.clamp(min=1), c)
    codes = (flat.unsqueeze(1) - c).abs().argmin(dim=1).reshape(w.shape)
    return codes.to(torch.int32), c


def _kmeans_decode(codes, codebook, s):
    return codebook[codes.long()]


def _binary_encode(w, s):
    alpha = _per_channel(w).abs().mean(dim=1)
    return (w >= 0).to(torch.int32), alpha  # 1 bit: 1 → +alpha, 0 → -alpha


def _binary_decode(codes, alpha, s):
    return (2.0 * codes.float() - 1.0) * _bcast(alpha, codes.shape)


def _ternary_encode(w, s):
    wc = _per_channel(w)
    delta = 0.7 * wc.abs().mean(dim=1, keepdim=True)
    keep = wc.abs() > delta
    alpha = (wc.abs() * keep).sum(dim=1) / keep.sum(dim=1).clamp(min=1)
    codes = (torch.sign(wc) * keep).reshape(w.shape)
    return codes.to(torch.int32), alpha


def _scaled_decode(codes, alpha, s):
    return codes.float() * _bcast(alpha, codes.shape)


_ENCODERS = {
    "pow2": _pow2_encode,
    "kmeans": _kmeans_encode,
    "binary": _binary_encode,
    "ternary": _ternary_encode,
}
_DECODERS = {
    "pow2": _pow2_decode,
    "kmeans": _kmeans_decode,
    "binary": _binary_decode,
    "ternary": _scaled_decode,
}
