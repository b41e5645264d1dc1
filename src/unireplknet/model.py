"""UniRepLKNet: the network, its nine variants, and their registration with timm."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from timm.layers import trunc_normal_
from timm.models import FeatureInfo, register_model
from torch import nn

from .layers import LayerNorm2d, UniRepLKNetBlock

__all__ = ["UniRepLKNet", "VARIANTS", "Variant", "default_kernel_sizes", "list_models"]


def _repeat(pattern: Sequence[int], times: int) -> tuple[int, ...]:
    return tuple(pattern) * times


# Default per-block kernel sizes by depths (the reference code's tables).
_DEFAULT_KERNEL_SIZES: dict[tuple[int, ...], tuple[tuple[int, ...], ...]] = {
    (2, 2, 6, 2): ((3, 3), (13, 13), _repeat((13,), 6), (13, 13)),
    (2, 2, 8, 2): ((3, 3), (13, 13), _repeat((13,), 8), (13, 13)),
    (3, 3, 18, 3): ((3, 3, 3), (13, 13, 13), _repeat((13, 3), 9), (13, 13, 13)),
    (3, 3, 27, 3): ((3, 3, 3), (13, 13, 13), _repeat((13, 3, 3), 9), (13, 13, 13)),
}


def default_kernel_sizes(depths: Sequence[int]) -> tuple[tuple[int, ...], ...]:
    """Per-block kernel sizes for the paper's depth settings; other depths need explicit ones."""
    try:
        return _DEFAULT_KERNEL_SIZES[tuple(depths)]
    except KeyError:
        raise ValueError(
            f"no default kernel sizes for depths {tuple(depths)}; pass kernel_sizes=(stage0, ..., stage3), "
            f"one size per block (defaults exist for {sorted(_DEFAULT_KERNEL_SIZES)})"
        ) from None


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


def list_models() -> list[str]:
    """Names of the registered UniRepLKNet variants, smallest first."""
    return list(VARIANTS)


class Stem(nn.Module):
    """4x downsampling: conv3x3/2 -> LN -> GELU -> conv3x3/2 -> LN, ``(N, in, H, W) -> (N, C, H/4, W/4)``."""

    def __init__(self, in_chans: int, dim: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_chans, dim // 2, 3, stride=2, padding=1)
        self.norm1 = LayerNorm2d(dim // 2, eps=1e-6)
        self.conv2 = nn.Conv2d(dim // 2, dim, 3, stride=2, padding=1)
        self.norm2 = LayerNorm2d(dim, eps=1e-6)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm2(self.conv2(F.gelu(self.norm1(self.conv1(x)))))


class Downsample(nn.Sequential):
    """2x downsampling between stages: conv3x3/2 -> channel LayerNorm (stride 1 below an output stride)."""

    def __init__(self, in_dim: int, out_dim: int, stride: int = 2) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_dim, out_dim, 3, stride=stride, padding=1)
        self.norm = LayerNorm2d(out_dim, eps=1e-6)


class Stage(nn.Module):
    """Optional downsampling followed by a sequence of :class:`UniRepLKNetBlock`."""

    def __init__(self, downsample: nn.Module, blocks: list[UniRepLKNetBlock]) -> None:
        super().__init__()
        self.downsample = downsample
        self.blocks = nn.Sequential(*blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(self.downsample(x))


class ClassifierHead(nn.Module):
    """Global average pool -> LayerNorm -> dropout -> Linear; ``(N, C, H, W) -> (N, num_classes)``."""

    def __init__(self, dim: int, num_classes: int, drop_rate: float = 0.0) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.drop = nn.Dropout(drop_rate)
        self.fc = nn.Linear(dim, num_classes) if num_classes > 0 else nn.Identity()

    def forward(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.drop(self.norm(x.mean((2, 3))))
        return x if pre_logits else self.fc(x)


class UniRepLKNet(nn.Module):
    """UniRepLKNet (Ding et al., CVPR 2024): a large-kernel ConvNet for images and other modalities.

    Args:
        in_chans: input channels (3 for images, 1 for spectrograms, ...).
        num_classes: classifier outputs; 0 keeps the pooled, normalised features (no Linear).
        depths: blocks per stage.
        dims: channels per stage.
        kernel_sizes: per stage, one kernel size per block (default: the paper's schedule).
        drop_path_rate: stochastic depth, growing linearly from 0 over all blocks.
        drop_rate: dropout before the classifier.
        layer_scale_init_value: initial layer scale (None/0 disables it).
        head_init_scale: multiplies the initial classifier weight and bias.
        deploy: build the re-parameterized inference structure directly.
        grad_checkpointing: recompute blocks in the backward pass.
        sync_bn: SyncBatchNorm (multi-GPU training).
        features_only: dense-prediction backbone: no head; ``forward`` returns the four stage maps
            (strides 4, 8, 16, 32), each after its own channel LayerNorm (the reference's ``norm0..3``).
        out_indices: which stages ``features_only`` returns.
        output_stride: 32, 16 or 8: the downsampling convs that would go below it keep stride 1
            (for DeepLab-style heads); the blocks' kernels stay undilated, so an output stride under 32
            changes what pretrained weights see, as in any backbone.

    Input ``(N, in_chans, H, W)`` with H, W >= 1; logits ``(N, num_classes)``.
    """

    def __init__(
        self,
        in_chans: int = 3,
        num_classes: int = 1000,
        depths: Sequence[int] = (3, 3, 27, 3),
        dims: Sequence[int] = (96, 192, 384, 768),
        kernel_sizes: Sequence[Sequence[int]] | None = None,
        drop_path_rate: float = 0.0,
        drop_rate: float = 0.0,
        layer_scale_init_value: float | None = 1e-6,
        head_init_scale: float = 1.0,
        deploy: bool = False,
        grad_checkpointing: bool = False,
        sync_bn: bool = False,
        features_only: bool = False,
        out_indices: Sequence[int] = (0, 1, 2, 3),
        output_stride: int = 32,
    ) -> None:
        super().__init__()
        depths, dims = tuple(depths), tuple(dims)
        if len(depths) != 4 or len(dims) != 4:
            raise ValueError(f"depths and dims need 4 entries (one per stage), got {depths} and {dims}")
        if kernel_sizes is None:
            kernel_sizes = default_kernel_sizes(depths)
        kernel_sizes = tuple(tuple(int(k) for k in ks) for ks in kernel_sizes)
        if len(kernel_sizes) != 4 or any(len(ks) != d for ks, d in zip(kernel_sizes, depths, strict=False)):
            raise ValueError(f"kernel_sizes {kernel_sizes} must give one size per block for depths {depths}")
        self.in_chans = in_chans
        self.num_classes = num_classes
        self.depths, self.dims, self.kernel_sizes = depths, dims, kernel_sizes
        self.num_features = dims[-1]
        if output_stride not in (8, 16, 32):
            raise ValueError(f"output_stride must be 8, 16 or 32, got {output_stride}")
        if not out_indices or any(i not in range(4) for i in out_indices):
            raise ValueError(f"out_indices must pick stages among 0, 1, 2, 3, got {tuple(out_indices)}")
        self.features_only = features_only
        self.out_indices = tuple(out_indices)
        self.output_stride = output_stride

        self.stem = Stem(in_chans, dims[0])
        rates = torch.linspace(0, drop_path_rate, sum(depths), device="cpu").tolist()
        stages, first, reductions = [], 0, [4]
        for i in range(4):
            blocks = [
                UniRepLKNetBlock(
                    dims[i],
                    kernel_sizes[i][j],
                    drop_path=rates[first + j],
                    layer_scale_init_value=layer_scale_init_value,
                    deploy=deploy,
                    grad_checkpointing=grad_checkpointing,
                    sync_bn=sync_bn,
                )
                for j in range(depths[i])
            ]
            if i == 0:
                downsample = nn.Identity()
            else:
                stride = 2 if reductions[-1] * 2 <= output_stride else 1
                downsample = Downsample(dims[i - 1], dims[i], stride)
                reductions.append(reductions[-1] * stride)
            stages.append(Stage(downsample, blocks))
            first += depths[i]
        self.stages = nn.ModuleList(stages)
        feature_info = [dict(num_chs=dims[i], reduction=reductions[i], module=f"stages.{i}") for i in range(4)]
        # timm's features_only contract (used by segmentation_models_pytorch's "tu-" encoders): a
        # FeatureInfo over the returned stages; the classifier keeps timm's plain list.
        self.feature_info = FeatureInfo(feature_info, self.out_indices) if features_only else feature_info
        if features_only:
            self.stage_norms = nn.ModuleList([LayerNorm2d(dims[i], eps=1e-6) for i in range(4)])
            self.head = None
        else:
            self.head = ClassifierHead(dims[-1], num_classes, drop_rate)
        self.apply(self._init_weights)
        if self.head is not None and isinstance(self.head.fc, nn.Linear):
            with torch.no_grad():
                self.head.fc.weight.mul_(head_init_scale)
                self.head.fc.bias.mul_(head_init_scale)

    @staticmethod
    def _init_weights(m: nn.Module) -> None:
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            trunc_normal_(m.weight, std=0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)

    # -- timm-style API -------------------------------------------------------------------------
    @torch.jit.ignore
    def set_grad_checkpointing(self, enable: bool = True) -> None:
        for block in self.modules():
            if isinstance(block, UniRepLKNetBlock):
                block.grad_checkpointing = enable

    @torch.jit.ignore
    def group_matcher(self, coarse: bool = False) -> dict:
        """Parameter groups for timm's layer-wise lr decay: stem first, then stages/blocks."""
        return dict(
            stem=r"^stem",
            blocks=r"^stages\.(\d+)"
            if coarse
            else [(r"^stages\.(\d+)\.downsample", (0,)), (r"^stages\.(\d+)\.blocks\.(\d+)", None)],
        )

    @torch.jit.ignore
    def no_weight_decay(self) -> set[str]:
        return set()

    @torch.jit.ignore
    def get_classifier(self) -> nn.Module:
        return self.head.fc

    def reset_classifier(self, num_classes: int, **_: object) -> None:
        """Replace the classifier with a fresh one for ``num_classes`` outputs (0 = none)."""
        if self.head is None:
            raise ValueError("a features_only backbone has no classifier to reset")
        self.num_classes = num_classes
        fc = nn.Linear(self.num_features, num_classes) if num_classes > 0 else nn.Identity()
        if isinstance(fc, nn.Linear):
            self._init_weights(fc)
            fc = fc.to(self.head.norm.weight)
        self.head.fc = fc

    @property
    def is_deploy(self) -> bool:
        """True when every block is in the re-parameterized inference structure."""
        return all(b.gamma is None and b.ffn.norm is None and b.norm is None for b in self._blocks())

    def _blocks(self) -> list[UniRepLKNetBlock]:
        return [m for m in self.modules() if isinstance(m, UniRepLKNetBlock)]

    def check_input(self, x: torch.Tensor) -> None:
        """Raise a ValueError naming what was expected if ``x`` cannot be fed to this model."""
        if not isinstance(x, torch.Tensor):
            raise ValueError(f"expected a torch.Tensor of shape (N, {self.in_chans}, H, W), got {type(x).__name__}")
        if x.dim() != 4:
            raise ValueError(
                f"expected a 4-D input (N, {self.in_chans}, H, W), got shape {tuple(x.shape)}"
                + ("; add a batch dimension with x.unsqueeze(0)" if x.dim() == 3 else "")
            )
        if x.shape[1] != self.in_chans:
            raise ValueError(
                f"expected {self.in_chans} input channels, got {x.shape[1]} (shape {tuple(x.shape)}); "
                f"build the model with in_chans={x.shape[1]} or convert the input"
            )
        if x.shape[0] == 0 or x.shape[2] == 0 or x.shape[3] == 0:
            raise ValueError(f"input has an empty dimension: shape {tuple(x.shape)}")
        if not x.is_floating_point():
            raise ValueError(f"expected a floating-point input, got {x.dtype}; convert with x.float()")

    def forward_stages(self, x: torch.Tensor) -> list[torch.Tensor]:
        """All four stage outputs ``[(N, dims[i], H / 4 / 2^i, W / 4 / 2^i)]`` before any norm."""
        self.check_input(x)
        x = self.stem(x)
        outs = []
        for stage in self.stages:
            x = stage(x)
            outs.append(x)
        return outs

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Last stage map ``(N, dims[3], ~H/32, ~W/32)``."""
        return self.forward_stages(x)[-1]

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """Pool, norm and classify a ``forward_features`` map: ``(N, num_classes)`` (or ``(N, C)``)."""
        return self.head(x, pre_logits=pre_logits)

    def forward_pyramid(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The dense-prediction outputs: stage maps at strides 4/8/16/32, each after its own norm."""
        if not self.features_only:
            raise ValueError("build the model with features_only=True to get normalised multi-scale features")
        maps = self.forward_stages(x)
        return [self.stage_norms[i](maps[i]) for i in self.out_indices]

    def forward(self, x: torch.Tensor) -> torch.Tensor | list[torch.Tensor]:
        if self.features_only:
            return self.forward_pyramid(x)
        return self.forward_head(self.forward_features(x))


def _build(name: str, pretrained: bool = False, **kwargs) -> UniRepLKNet:
    if pretrained:
        raise ValueError(
            "pretrained=True is not supported through timm; use "
            f"unireplknet.create_model({name!r}, checkpoint='hf://DingXiaoH/UniRepLKNet/<file>') or a local path"
        )
    kwargs.pop("pretrained_cfg", None)
    kwargs.pop("pretrained_cfg_overlay", None)
    kwargs.pop("cache_dir", None)
    variant = VARIANTS[name]
    kwargs.setdefault("depths", variant.depths)
    kwargs.setdefault("dims", variant.dims)
    return UniRepLKNet(**kwargs)


def _entrypoint(name: str):
    """A timm model entrypoint named ``name`` (timm registers functions under their own names)."""

    def entrypoint(pretrained: bool = False, **kwargs) -> UniRepLKNet:
        return _build(name, pretrained, **kwargs)

    entrypoint.__name__ = entrypoint.__qualname__ = name
    entrypoint.__doc__ = f"{name}: depths {VARIANTS[name].depths}, dims {VARIANTS[name].dims}."
    return register_model(entrypoint)


for _name in VARIANTS:
    globals()[_name] = _entrypoint(_name)
