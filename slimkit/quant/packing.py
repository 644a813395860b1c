"""Bit packing of integer codes, so a 4-bit weight really costs half a byte.

Codes are offset to unsigned (code − qmin), split into `bits` bits, laid end to end, and
packed 8 to a byte (little-endian bit order). Any width 1..8 packs exactly; 16-bit codes are
stored offset into int16 (code − qmin − 32768), so signed and unsigned both fit.
Pure, bit-exact, and the inverse of each other.
"""

from __future__ import annotations

import torch

from slimkit.errors import ConfigError


def packed_nbytes(numel: int, bits: int) -> int:
    return numel * 2 if bits == 16 else (numel * bits + 7) // 8


def pack_bits(codes: torch.Tensor, bits: int, qmin: int) -> torch.Tensor:
    """Integer codes (any shape) in [qmin, qmin + 2^bits) → flat uint8 (or int16 for 16 bits)."""
    if not (1 <= bits <= 8 or bits == 16):
        raise ConfigError(f"pack_bits: bits={bits} not allowed; use 1..8 or 16")
    u = codes.reshape(-1).to(torch.int32) - qmin
    if u.numel() and u.device.type != "meta" and (u.min() < 0 or u.max() >= 2**bits):
        top = qmin + 2**bits - 1
        raise ConfigError(f"pack_bits: codes outside [{qmin}, {top}] for {bits} bits")
    if bits == 16:
        return (u - 32768).to(torch.int16)
    if bits == 8:  # fast paths for the common widths; same layout as the general case
        return u.to(torch.uint8)
    if bits == 4:
        u = torch.nn.functional.pad(u, (0, u.numel() % 2)).reshape(-1, 2)
        return (u[:, 0] | (u[:, 1] << 4)).to(torch.uint8)
    shifts = torch.arange(bits, dtype=torch.int32, device=u.device)
    bitstream = ((u.unsqueeze(1) >> shifts) & 1).reshape(-1)  # (numel·bits,)
    pad = (-bitstream.numel()) % 8
    bitstream = torch.nn.functional.pad(bitstream, (0, pad)).reshape(-1, 8)
    weights = 2 ** torch.arange(8, dtype=torch.int32, device=u.device)
    return (bitstream * weights).sum(dim=1).to(torch.uint8)


def unpack_bits(packed: torch.Tensor, bits: int, qmin: int, numel: int) -> torch.Tensor:
    """Inverse of pack_bits: flat int32 codes of length `numel`."""
    if bits == 16:
        return packed.to(torch.int32)[:numel] + 32768 + qmin
    if bits == 8:
        return packed.to(torch.int32)[:numel] + qmin
    if bits == 4:
        p = packed.to(torch.int32)
        return torch.stack([p & 15, p >> 4], dim=1).reshape(-1)[:numel] + qmin
    shifts = torch.arange(8, dtype=torch.int32, device=packed.device)
    bitstream = ((packed.to(torch.int32).unsqueeze(1) >> shifts) & 1).reshape(-1)
    bitstream = bitstream[: numel * bits].reshape(numel, bits)
    weights = 2 ** torch.arange(bits, dtype=torch.int32, device=packed.device)
    return (bitstream * weights).sum(dim=1) + qmin
