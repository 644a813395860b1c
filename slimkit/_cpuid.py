"""Read x86 CPUID and XGETBV from Python: a few bytes of machine code in an executable page.

The kernel's /proc/cpuinfo describes the host; CPUID describes the CPU the process actually
runs on — the one ONNX Runtime's and oneDNN's dispatchers query (they differ under an emulator
or a hypervisor that masks features). Returns None wherever the page cannot be made
executable (hardened kernels); the caller then falls back to /proc/cpuinfo.
"""

from __future__ import annotations

import contextlib
import ctypes
import mmap
import struct

# void cpuid(uint32 leaf, uint32 subleaf, uint32 out[4])  — System V x86-64 ABI
_CPUID = bytes([
    0x53,                    # push rbx           (callee-saved; cpuid clobbers it)
    0x89, 0xF8,              # mov eax, edi        leaf
    0x89, 0xF1,              # mov ecx, esi        subleaf
    0x49, 0x89, 0xD0,        # mov r8, rdx         out
    0x0F, 0xA2,              # cpuid
    0x41, 0x89, 0x00,        # mov [r8], eax
    0x41, 0x89, 0x58, 0x04,  # mov [r8+4], ebx
    0x41, 0x89, 0x48, 0x08,  # mov [r8+8], ecx
    0x41, 0x89, 0x50, 0x0C,  # mov [r8+12], edx
    0x5B,                    # pop rbx
    0xC3,                    # ret
])
# uint64 xgetbv0(void): XCR0, which register states the OS saves (AVX, AVX-512, AMX)
_XGETBV = bytes([0x31, 0xC9,        # xor ecx, ecx
                 0x0F, 0x01, 0xD0,  # xgetbv
                 0x48, 0xC1, 0xE2, 0x20,  # shl rdx, 32
                 0x48, 0x09, 0xD0,  # or rax, rdx
                 0xC3])


class _Code:
    def __init__(self) -> None:
        size = mmap.PAGESIZE
        self.page = mmap.mmap(-1, size, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
        self.page.write(_CPUID + _XGETBV)
        base = ctypes.addressof(ctypes.c_char.from_buffer(self.page))
        self.cpuid_fn = ctypes.CFUNCTYPE(None, ctypes.c_uint32, ctypes.c_uint32,
                                         ctypes.POINTER(ctypes.c_uint32))(base)
        self.xgetbv_fn = ctypes.CFUNCTYPE(ctypes.c_uint64)(base + len(_CPUID))

    def cpuid(self, leaf: int, sub: int = 0) -> tuple[int, int, int, int]:
        out = (ctypes.c_uint32 * 4)()
        self.cpuid_fn(leaf, sub, out)
        return tuple(out)  # eax, ebx, ecx, edx


def _bit(v: int, i: int) -> bool:
    return bool((v >> i) & 1)


def x86_info() -> tuple[str, str, set[str]] | None:
    """(vendor, brand string, features) from CPUID, or None if it cannot run here."""
    try:
        code = _Code()
    except (OSError, ValueError, TypeError, AttributeError):
        return None
    try:
        return _decode(code)
    finally:
        del code.cpuid_fn, code.xgetbv_fn  # ctypes holds a pointer into the page
        with contextlib.suppress(BufferError):  # a view still alive: the GC closes it
            code.page.close()


def _decode(code: _Code) -> tuple[str, str, set[str]]:
    max_leaf, b, c, d = code.cpuid(0)
    vendor = struct.pack("<III", b, d, c).decode("ascii", "replace")
    feats: set[str] = set()
    brand = ""
    if code.cpuid(0x80000000)[0] >= 0x80000004:
        regs = [r for leaf in (0x80000002, 0x80000003, 0x80000004) for r in code.cpuid(leaf)]
        brand = struct.pack("<12I", *regs).split(b"\0")[0].decode("ascii", "replace").strip()
    if max_leaf < 7:
        return vendor, brand, feats
    _, _, c1, _ = code.cpuid(1)
    osxsave = _bit(c1, 27)
    xcr0 = code.xgetbv_fn() if osxsave else 0
    ymm = (xcr0 & 0b110) == 0b110  # SSE + AVX state saved by the OS
    zmm = ymm and (xcr0 & 0xE0) == 0xE0  # opmask + ZMM state
    tiles = (xcr0 & 0x60000) == 0x60000  # AMX tile config + data
    _, b7, c7, d7 = code.cpuid(7, 0)
    a71 = code.cpuid(7, 1)[0]
    checks = {
        "fma": ymm and _bit(c1, 12), "avx2": ymm and _bit(b7, 5),
        "avx512f": zmm and _bit(b7, 16), "avx512bw": zmm and _bit(b7, 30),
        "avx512vl": zmm and _bit(b7, 31), "avx512_vnni": zmm and _bit(c7, 11),
        "avx512_fp16": zmm and _bit(d7, 23), "avx512_bf16": zmm and _bit(a71, 5),
        "avx_vnni": ymm and _bit(a71, 4),
        "amx_bf16": tiles and _bit(d7, 22), "amx_tile": tiles and _bit(d7, 24),
        "amx_int8": tiles and _bit(d7, 25),
    }
    feats.update(k for k, ok in checks.items() if ok)
    return vendor, brand, feats
