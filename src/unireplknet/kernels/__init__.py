"""Fast depthwise convolution: Triton kernels (no compile step) behind a drop-in ``nn.Conv2d``.

>>> from unireplknet.kernels import DepthwiseConv2d, backend
>>> conv = DepthwiseConv2d(64, 13)           # same weights/keys as nn.Conv2d(64, 64, 13, padding=6, groups=64)
>>> branch = DepthwiseConv2d(64, 3, bias=False, dilation=5)  # nn.Conv2d(..., 3, padding=5, dilation=5, ...)
>>> with backend("torch"): ...               # or UNIREPLKNET_DWCONV=torch / triton / auto
"""

from . import dwconv
from .dwconv import *  # noqa: F403  (the public API is dwconv's __all__)

__all__ = dwconv.__all__
