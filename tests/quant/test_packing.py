import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from slimkit.errors import ConfigError
from slimkit.quant.packing import pack_bits, packed_nbytes, unpack_bits


@settings(max_examples=80, deadline=None)
@given(bits=st.sampled_from([1, 2, 3, 4, 5, 6, 7, 8, 16]), numel=st.integers(0, 300),
       signed=st.booleans(), seed=st.integers(0, 1000))
def test_pack_unpack_round_trip_is_bit_exact(bits, numel, signed, seed):
    qmin = -(2 ** (bits - 1)) if signed else 0
    codes = torch.randint(qmin, qmin + 2**bits, (numel,),
                          generator=torch.Generator().manual_seed(seed), dtype=torch.int32)
    packed = pack_bits(codes, bits, qmin)
    assert packed.numel() * packed.element_size() == packed_nbytes(numel, bits)
    assert torch.equal(unpack_bits(packed, bits, qmin, numel), codes)


def test_int4_packs_two_codes_per_byte_low_nibble_first():
    codes = torch.tensor([1, 2, 15, 0], dtype=torch.int32)
    assert pack_bits(codes, 4, 0).tolist() == [1 | 2 << 4, 15]


def test_out_of_range_codes_are_rejected():
    with pytest.raises(ConfigError, match="codes outside"):
        pack_bits(torch.tensor([8]), 4, -8)
