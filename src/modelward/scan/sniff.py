"""Cheap content checks shared by the registry (before a format module is imported) and detectors."""

from __future__ import annotations

from modelward.scan.source import Source

TORCH_MAGIC_NUMBER = 0x1950A86A20F9469CFC6C
"""The first pickle of a legacy (non-zip) ``torch.save`` file is this number."""
_TORCH_MAGIC_BIN = b"\x8a\x0a" + TORCH_MAGIC_NUMBER.to_bytes(10, "little")
_TORCH_MAGIC_TEXT = b"L" + str(TORCH_MAGIC_NUMBER).encode()

HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
_USERBLOCK_OFFSETS = (0, 512, 1024, 2048)
_FAR_OFFSETS = tuple(4096 << i for i in range(5))  # 4 KiB ... 64 KiB


def find_hdf5_signature(head: bytes, src: Source) -> int | None:
    """Offset of the HDF5 superblock (0 or a power-of-two user block size), or None."""
    for off in _USERBLOCK_OFFSETS:
        if head[off : off + 8] == HDF5_MAGIC:
            return off
    for off in _FAR_OFFSETS:
        if off + 8 > src.size:
            break
        if src.read(off, 8) == HDF5_MAGIC:
            return off
    return None


def is_legacy_torch(head: bytes) -> bool:
    """Whether ``head`` starts with legacy ``torch.save``'s magic-number pickle."""
    if head[:1] == b"\x80":
        return _TORCH_MAGIC_BIN in head[:32]
    return head[:40].lstrip(b"(").startswith(_TORCH_MAGIC_TEXT)
