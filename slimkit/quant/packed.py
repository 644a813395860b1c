"""PackedWeight: a frozen weight stored as bit-packed integer codes plus their params.

This is what `convert` leaves behind: the state_dict holds the real compressed bytes
(a 4-bit weight is numel/2 bytes), and forward() decodes to float for simulation. The
decoded weight is cached until the packed buffer changes (e.g. load_state_dict).
"""

from __future__ import annotations

import torch
from torch import nn

from slimkit.quant.nonuniform import NonUniformScheme
from slimkit.quant.packing import pack_bits, packed_nbytes, unpack_bits
from slimkit.quant.qscheme import QScheme, dequantize, quantize


class PackedWeight(nn.Module):
    def __init__(
        self, shape: torch.Size, scheme: QScheme | NonUniformScheme, n_params: int
    ) -> None:
        super().__init__()
        self.shape, self.scheme = torch.Size(shape), scheme
        numel = self.shape.numel()
        dtype = torch.int16 if scheme.bits == 16 else torch.uint8
        self.register_buffer("packed", torch.zeros(packed_nbytes(numel, scheme.bits) // (
            2 if scheme.bits == 16 else 1), dtype=dtype))
        self.register_buffer("params", torch.zeros(n_params))  # scale / codebook / alpha
        if isinstance(scheme, QScheme):
            self.register_buffer("zero_point", torch.zeros(n_params, dtype=torch.int32))
        self._cache: tuple[int, torch.Tensor] | None = None

    @classmethod
    def from_weight(
        cls,
        w: torch.Tensor,
        scheme: QScheme | NonUniformScheme,
        qparams: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> PackedWeight:
        w = w.detach().float()
        if isinstance(scheme, QScheme):
            scale, zp = qparams
            codes = quantize(w, scale, zp, scheme)
            qmin = scheme.qmin
        else:
            codes, scale = scheme.encode(w)
            qmin = scheme.qmin
        pw = cls(w.shape, scheme, scale.numel()).to(w.device)
        pw.packed.copy_(pack_bits(codes, scheme.bits, qmin))
        pw.params.copy_(scale.reshape(-1))
        if isinstance(scheme, QScheme):
            pw.zero_point.copy_(zp.reshape(-1))
        return pw

    def codes(self) -> torch.Tensor:
        return unpack_bits(self.packed, self.scheme.bits, self.scheme.qmin, self.shape.numel()
                           ).reshape(self.shape)

    def forward(self) -> torch.Tensor:
        version = self.packed._version + self.params._version
        if self._cache is None or self._cache[0] != version:
            self._cache = (version, self._decode())
        return self._cache[1]

    def _decode(self) -> torch.Tensor:
        codes = self.codes()
        if isinstance(self.scheme, QScheme):
            return dequantize(codes, self.params, self.zero_point, self.scheme)
        return self.scheme.decode(codes, self.params)

    def nbytes(self) -> int:
        return sum(b.numel() * b.element_size() for b in self.buffers())

    def extra_repr(self) -> str:
        return f"{tuple(self.shape)}, {self.scheme.describe()}, {self.nbytes()} bytes"
