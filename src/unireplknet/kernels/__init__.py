"""Fast depthwise convolution: Triton kernels (no compile step) behind a drop-in ``nn.Conv2d``.

>>> from unireplknet.kernels import DepthwiseConv2d, backend
>>> conv = DepthwiseConv2d(64, 13)           # same weights/keys as nn.Conv2d(64, 64, 13, padding=6, groups=64)
>>> with backend("torch"): ...               # or UNIREPLKNET_DWCONV=torch / triton / auto
"""

from .dwconv import (
    BACKENDS,
    MAX_TRITON_KERNEL,
    MIN_TRITON_KERNEL,
    DepthwiseConv2d,
    DepthwiseConv2dFunction,
    backend,
    crop_kernel,
    depthwise_conv2d,
    get_backend,
    set_backend,
    triton_available,
)

__all__ = [
    "BACKENDS",
    "MAX_TRITON_KERNEL",
    "MIN_TRITON_KERNEL",
    "DepthwiseConv2d",
    "DepthwiseConv2dFunction",
    "backend",
    "crop_kernel",
    "depthwise_conv2d",
    "get_backend",
    "set_backend",
    "triton_available",
]
