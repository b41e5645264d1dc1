"""The nine UniRepLKNet variants of the paper: blocks and channels per stage (A 4.4M ... XL 386M parameters)."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["VARIANTS", "Variant"]


@dataclass(frozen=True)
class Variant:
    depths: tuple[int, int, int, int]
    dims: tuple[int, int, int, int]


VARIANTS: dict[str, Variant] = {
    "unireplknet_a": Variant((2, 2, 6, 2), (40, 80, 160, 320)),
    "unireplknet_f": Variant((2, 2, 6, 2), (48, 96, 192, 384)),
    "unireplknet_p": Variant((2, 2, 6, 2), (64, 128, 256, 512)),
    "unireplknet_n": Variant((2, 2, 8, 2), (80, 160, 320, 640)),
    "unireplknet_t": Variant((3, 3, 18, 3), (80, 160, 320, 640)),
    "unireplknet_s": Variant((3, 3, 27, 3), (96, 192, 384, 768)),
    "unireplknet_b": Variant((3, 3, 27, 3), (128, 256, 512, 1024)),
    "unireplknet_l": Variant((3, 3, 27, 3), (192, 384, 768, 1536)),
    "unireplknet_xl": Variant((3, 3, 27, 3), (256, 512, 1024, 2048)),
}
