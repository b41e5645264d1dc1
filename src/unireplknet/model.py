"""UniRepLKNet: the network, its nine variants, their pretrained configs, the factory and timm registration.

Laid out like a timm model file: building blocks come from :mod:`unireplknet.layers`; this file holds the
network (:class:`UniRepLKNet`), the variant table (:data:`VARIANTS`), the authors' published checkpoints as timm
pretrained configs (:data:`default_cfgs`), the builder shared by :func:`create_model` and timm's
``timm.create_model`` (:func:`build_unireplknet`), and one registered entrypoint per variant. Checkpoint name
conversion is :func:`unireplknet.checkpoint.checkpoint_filter_fn`.
"""

import functools
import os
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from timm.layers import register_notrace_function, trunc_normal_
from timm.models import FeatureInfo, build_model_with_cfg, generate_default_cfgs, register_model
from timm.models._features import feature_take_indices
from torch import nn

from .checkpoint import CheckpointError, checkpoint_filter_fn, is_training_structure, load_checkpoint, load_state_dict
from .layers import LayerNorm2d, UniRepLKNetBlock
from .reparam import reparameterize
from .variants import VARIANTS, Variant

__all__ = [
    "UniRepLKNet",
    "VARIANTS",
    "Variant",
    "build_unireplknet",
    "create_model",
    "default_cfgs",
    "default_kernel_sizes",
    "list_models",
]


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


POOL_TYPES = ("avg", "max", "avgmax", "")


class ClassifierHead(nn.Module):
    """Global pool -> LayerNorm -> dropout -> Linear; ``(N, C, H, W) -> (N, num_classes)``.

    ``pool_type`` ``"avg"`` (the paper's), ``"max"`` or ``"avgmax"`` (their mean) give ``(N, C)`` features;
    ``""`` keeps the map: the norm and classifier then act per position, ``(N, C, H, W) -> (N, K, H, W)``.
    """

    __constants__ = ["pool_type"]

    def __init__(self, dim: int, num_classes: int, pool_type: str = "avg", drop_rate: float = 0.0) -> None:
        super().__init__()
        self.pool_type = _check_pool(pool_type)
        self.norm: nn.Module = nn.LayerNorm(dim, eps=1e-6)
        self.drop = nn.Dropout(drop_rate)
        self.fc: nn.Module = nn.Linear(dim, num_classes) if num_classes > 0 else nn.Identity()

    def forward(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        if self.pool_type == "":
            x = self.drop(self.norm(x.permute(0, 2, 3, 1)))
            return (x if pre_logits else self.fc(x)).permute(0, 3, 1, 2)
        if self.pool_type == "avg":
            x = x.mean((2, 3))
        elif self.pool_type == "max":
            x = x.amax((2, 3))
        else:
            x = 0.5 * (x.mean((2, 3)) + x.amax((2, 3)))
        x = self.drop(self.norm(x))
        return x if pre_logits else self.fc(x)


def _check_pool(pool_type: str) -> str:
    if pool_type not in POOL_TYPES:
        raise ValueError(
            f"global_pool {pool_type!r} is not supported: choose one of {', '.join(map(repr, POOL_TYPES))} "
            "(concatenating poolings would not fit the head's LayerNorm)"
        )
    return pool_type


@register_notrace_function  # torch.fx records the check as one call and runs it on real tensors
def check_model_input(x: torch.Tensor, in_chans: int) -> None:
    """Raise a ValueError naming what was expected if ``x`` cannot be fed to a model with ``in_chans`` inputs."""
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"expected a torch.Tensor of shape (N, {in_chans}, H, W), got {type(x).__name__}")
    if x.dim() != 4:
        raise ValueError(
            f"expected a 4-D input (N, {in_chans}, H, W), got shape {tuple(x.shape)}"
            + ("; add a batch dimension with x.unsqueeze(0)" if x.dim() == 3 else "")
        )
    if x.shape[1] != in_chans:
        raise ValueError(
            f"expected {in_chans} input channels, got {x.shape[1]} (shape {tuple(x.shape)}); "
            f"build the model with in_chans={x.shape[1]} or convert the input"
        )
    if x.shape[0] == 0 or x.shape[2] == 0 or x.shape[3] == 0:
        raise ValueError(f"input has an empty dimension: shape {tuple(x.shape)}")
    if not x.is_floating_point():
        raise ValueError(f"expected a floating-point input, got {x.dtype}; convert with x.float()")


class UniRepLKNet(nn.Module):
    """UniRepLKNet (Ding et al., CVPR 2024): a large-kernel ConvNet for images and other modalities.

    Args:
        in_chans: input channels (3 for images, 1 for spectrograms, ...).
        num_classes: classifier outputs; 0 keeps the pooled, normalised features (no Linear).
        depths: blocks per stage.
        dims: channels per stage.
        kernel_sizes: per stage, one kernel size per block (default: the paper's schedule).
        global_pool: ``"avg"`` (the paper's), ``"max"``, ``"avgmax"``, or ``""`` (no pooling: per-position outputs).
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
        device, dtype: where and in which floating-point type the parameters are created.

    Input ``(N, in_chans, H, W)`` with H, W >= 1; logits ``(N, num_classes)``.
    """

    __constants__ = ["features_only"]
    __jit_unused_properties__ = ["is_deploy"]

    def __init__(
        self,
        in_chans: int = 3,
        num_classes: int = 1000,
        depths: Sequence[int] = (3, 3, 27, 3),
        dims: Sequence[int] = (96, 192, 384, 768),
        kernel_sizes: Sequence[Sequence[int]] | None = None,
        global_pool: str = "avg",
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
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        depths, dims = tuple(depths), tuple(dims)
        if len(depths) != 4 or len(dims) != 4:
            raise ValueError(f"depths and dims need 4 entries (one per stage), got {depths} and {dims}")
        if isinstance(in_chans, bool) or not isinstance(in_chans, int) or in_chans < 1:
            raise ValueError(f"in_chans must be a positive int, got {in_chans!r}")
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 0:
            raise ValueError(
                f"num_classes must be an int >= 0 (0: pooled features, no classifier), got {num_classes!r}"
            )
        if kernel_sizes is None:
            kernel_sizes = default_kernel_sizes(depths)
        kernel_sizes = tuple(tuple(int(k) for k in ks) for ks in kernel_sizes)
        if len(kernel_sizes) != 4 or any(len(ks) != d for ks, d in zip(kernel_sizes, depths, strict=False)):
            raise ValueError(f"kernel_sizes {kernel_sizes} must give one size per block for depths {depths}")
        if output_stride not in (8, 16, 32):
            raise ValueError(f"output_stride must be 8, 16 or 32, got {output_stride}")
        if not out_indices or any(i not in range(4) for i in out_indices):
            raise ValueError(f"out_indices must pick stages among 0, 1, 2, 3, got {tuple(out_indices)}")
        self.in_chans = in_chans
        self.num_classes = 0 if features_only else num_classes
        self.depths, self.dims, self.kernel_sizes = depths, dims, kernel_sizes
        self.num_features = self.head_hidden_size = dims[-1]
        self.drop_rate = drop_rate
        self.features_only = features_only
        self.out_indices = tuple(out_indices)
        self.output_stride = output_stride

        with torch.device(device) if device is not None else _no_device():
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
                self.head = ClassifierHead(dims[-1], num_classes, global_pool, drop_rate)
        self.apply(self._init_weights)
        if self.head is not None and isinstance(self.head.fc, nn.Linear):
            with torch.no_grad():
                self.head.fc.weight.mul_(head_init_scale)
                self.head.fc.bias.mul_(head_init_scale)
        if dtype is not None:
            self.to(dtype=dtype)

    @staticmethod
    def _init_weights(m: nn.Module) -> None:
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            trunc_normal_(m.weight, std=0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)

    # -- timm's model API ------------------------------------------------------------------------
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
        """The final Linear (``nn.Identity`` without one: ``num_classes=0`` or a ``features_only`` backbone)."""
        return nn.Identity() if self.head is None else self.head.fc

    def reset_classifier(self, num_classes: int, global_pool: str | None = None, reset_other: bool = False) -> None:
        """A fresh classifier for ``num_classes`` outputs (0 = none), on the model's device and dtype.

        ``global_pool`` changes the pooling (None keeps it); ``reset_other`` also drops the head's LayerNorm
        (as after :meth:`prune_intermediate_layers`, when the features no longer end at the last stage).
        """
        if self.head is None:
            raise ValueError("a features_only backbone has no classifier to reset; build it without features_only")
        reference = next(self.parameters())
        self.num_classes = num_classes
        if global_pool is not None:
            self.head.pool_type = _check_pool(global_pool)
        if reset_other:
            self.head.norm = nn.Identity()
        self.head_hidden_size = self.num_features
        fc = nn.Linear(self.num_features, num_classes) if num_classes > 0 else nn.Identity()
        if isinstance(fc, nn.Linear):
            fc = fc.to(device=reference.device, dtype=reference.dtype)
            self._init_weights(fc)
            fc.train(self.head.training)
        self.head.fc = fc

    def forward_intermediates(
        self,
        x: torch.Tensor,
        indices: int | list[int] | None = None,
        norm: bool = False,
        stop_early: bool = False,
        output_fmt: str = "NCHW",
        intermediates_only: bool = False,
    ) -> list[torch.Tensor] | tuple[torch.Tensor, list[torch.Tensor]]:
        """Stage outputs as timm's ``forward_intermediates`` (as its ConvNeXt).

        Args:
            x: ``(N, in_chans, H, W)``.
            indices: the last n stages if an int, all if None, else the stages listed (negative from the end).
            norm: apply the per-stage LayerNorms to the taps (``features_only`` backbones have them; the
                classifier has no norm before its pooling, so there it changes nothing).
            stop_early: stop after the last stage asked for.
            output_fmt: ``"NCHW"`` only.
            intermediates_only: return only the taps.

        Returns:
            The taps ``[(N, dims[i], H / 2^(i+2), W / 2^(i+2))]``, or ``(forward_features(x), taps)``.
        """
        if output_fmt != "NCHW":
            raise ValueError(f"output_fmt must be 'NCHW', got {output_fmt!r}")
        take_indices, max_index = feature_take_indices(len(self.stages), indices)
        if not torch.jit.is_scripting():
            check_model_input(x, self.in_chans)
        x = self.stem(x)
        stages = self.stages if torch.jit.is_scripting() or not stop_early else self.stages[: max_index + 1]
        intermediates = []
        for i, stage in enumerate(stages):
            x = stage(x)
            if i in take_indices:
                use_norm = norm and self.features_only
                intermediates.append(self.stage_norms[i](x) if use_norm else x)
        return intermediates if intermediates_only else (x, intermediates)

    def prune_intermediate_layers(
        self, indices: int | list[int] = 1, prune_norm: bool = False, prune_head: bool = True
    ) -> list[int]:
        """Drop the stages after the last of ``indices`` (and the head); returns the absolute indices kept.

        When stages are dropped the features end at the last kept one and ``num_features`` becomes its width. A
        pruned head (``prune_head``, or stages dropped) is pool-free with neither LayerNorm nor classifier, so no
        parameter is left unused. ``prune_norm`` is accepted for timm's interface (there is no norm between the
        stages and the head to prune).
        """
        del prune_norm
        take_indices, max_index = feature_take_indices(len(self.stages), indices)
        prune_end = max_index < len(self.stages) - 1
        self.stages = self.stages[: max_index + 1]
        if prune_end:
            self.num_features = self.head_hidden_size = self.dims[max_index]
        if self.head is not None and (prune_head or prune_end):
            self.reset_classifier(0, "", reset_other=True)
        return take_indices

    # -- forward ---------------------------------------------------------------------------------
    @property
    def is_deploy(self) -> bool:
        """True when every block is in the re-parameterized inference structure."""
        return all(b.gamma is None and b.ffn.norm is None and b.norm is None for b in self._blocks())

    def _blocks(self) -> list[UniRepLKNetBlock]:
        return [m for m in self.modules() if isinstance(m, UniRepLKNetBlock)]

    def check_input(self, x: torch.Tensor) -> None:
        """Raise a ValueError naming what was expected if ``x`` cannot be fed to this model."""
        check_model_input(x, self.in_chans)

    def forward_stages(self, x: torch.Tensor) -> list[torch.Tensor]:
        """All stage outputs ``[(N, dims[i], H / 4 / 2^i, W / 4 / 2^i)]`` before any norm."""
        if not torch.jit.is_scripting():
            check_model_input(x, self.in_chans)
        x = self.stem(x)
        outs = []
        for stage in self.stages:
            x = stage(x)
            outs.append(x)
        return outs

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Last stage map ``(N, num_features, ~H/32, ~W/32)``, unpooled."""
        return self.forward_stages(x)[-1]

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """Pool, norm and classify a ``forward_features`` map: ``(N, num_classes)`` (``(N, C)`` with pre_logits)."""
        if self.head is None:
            raise ValueError("a features_only backbone has no head; use forward() for its multi-scale features")
        return self.head(x, pre_logits=pre_logits)

    def forward_pyramid(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The dense-prediction outputs: stage maps at strides 4/8/16/32, each after its own norm."""
        if not self.features_only:
            raise ValueError("build the model with features_only=True to get normalised multi-scale features")
        maps = self.forward_stages(x)
        return [self.stage_norms[i](maps[i]) for i in self.out_indices]

    def forward(self, x: torch.Tensor):  # -> Tensor, or list[Tensor] for features_only (TorchScript: no Union)
        if self.features_only:
            return self.forward_pyramid(x)
        return self.forward_head(self.forward_features(x))


class _no_device:
    """A no-op context (``contextlib.nullcontext`` without the generic alias TorchScript trips on)."""

    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


# -- pretrained configs (timm) --------------------------------------------------------------------------
HF_REPO = "DingXiaoH/UniRepLKNet"
PAPER = "arXiv:2311.15599"


def _cfg(filename: str, **kwargs: Any) -> dict[str, Any]:
    """A timm pretrained config for one of the authors' files on the Hugging Face hub.

    The authors evaluate as ConvNeXt does: bicubic resize of the shorter side to ``size / crop_pct``, centre
    crop, ImageNet mean/std; at 384 px no crop (the image is squashed to 384 x 384).
    """
    return {
        "hf_hub_id": HF_REPO,
        "hf_hub_filename": filename,
        "num_classes": 1000,
        "input_size": (3, 224, 224),
        "pool_size": (7, 7),
        "crop_pct": 0.875,
        "crop_mode": "center",
        "interpolation": "bicubic",
        "mean": IMAGENET_DEFAULT_MEAN,
        "std": IMAGENET_DEFAULT_STD,
        "first_conv": "stem.conv1",
        "classifier": "head.fc",
        "license": "apache-2.0",
        "paper_ids": PAPER,
        "paper_name": "UniRepLKNet: A Universal Perception Large-Kernel ConvNet for Audio, Video, Point Cloud, "
        "Time-Series and Image Recognition",
        "origin_url": "https://github.com/AILab-CVC/UniRepLKNet",
        **kwargs,
    }


def _in22k(filename: str) -> dict[str, Any]:
    return _cfg(filename, num_classes=21841)


def _in22k_ft_384(filename: str) -> dict[str, Any]:
    return _cfg(filename, input_size=(3, 384, 384), pool_size=(12, 12), crop_pct=1.0, crop_mode="squash")


default_cfgs = generate_default_cfgs(
    {
        "unireplknet_a.in1k": _cfg("unireplknet_a_in1k_224_acc77.03.pth"),
        "unireplknet_f.in1k": _cfg("unireplknet_f_in1k_224_acc78.58.pth"),
        "unireplknet_p.in1k": _cfg("unireplknet_p_in1k_224_acc80.23.pth"),
        "unireplknet_n.in1k": _cfg("unireplknet_n_in1k_224_acc81.64.pth"),
        "unireplknet_t.in1k": _cfg("unireplknet_t_in1k_224_acc83.21.pth"),
        "unireplknet_s.in1k": _cfg("unireplknet_s_in1k_224_acc83.91.pth"),
        "unireplknet_s.in22k_ft_in1k_384": _in22k_ft_384("unireplknet_s_in22k_to_in1k_384_acc86.44.pth"),
        "unireplknet_s.in22k": _in22k("unireplknet_s_in22k_pretrain.pth"),
        "unireplknet_b.in22k_ft_in1k_384": _in22k_ft_384("unireplknet_b_in22k_to_in1k_384_acc87.40.pth"),
        "unireplknet_b.in22k": _in22k("unireplknet_b_in22k_pretrain.pth"),
        "unireplknet_l.in22k_ft_in1k_384": _in22k_ft_384("unireplknet_l_in22k_to_in1k_384_acc87.88.pth"),
        "unireplknet_l.in22k": _in22k("unireplknet_l_in22k_pretrain.pth"),
        "unireplknet_xl.in22k_ft_in1k_384": _in22k_ft_384("unireplknet_xl_in22k_to_in1k_384_acc87.96.pth"),
        "unireplknet_xl.in22k": _in22k("unireplknet_xl_in22k_pretrain.pth"),
    }
)


# -- the builder ------------------------------------------------------------------------------------------
def build_unireplknet(variant: str, pretrained: bool = False, **kwargs: Any) -> nn.Module:
    """Build ``variant`` (``"unireplknet_t"``, with a pretrained tag ``"unireplknet_t.in1k"`` or not) with timm's
    builder: its pretrained config attached, the authors' weights through :func:`checkpoint_filter_fn` when
    ``pretrained`` (``pretrained_cfg_overlay=dict(file=...)`` reads a local copy).

    ``features_only=True`` builds the reference's dense backbone (per-stage norms); with ``feature_cls``
    (``"getter"``, ``"hook"``, ...) timm wraps the classification network instead. ``deploy=True`` with
    ``pretrained`` loads the training-structure file, then re-parameterizes.
    """
    name = variant.split(".")[0]
    if name not in VARIANTS:
        raise ValueError(f"unknown model {name!r}; choose one of {', '.join(VARIANTS)}")
    kwargs.setdefault("depths", VARIANTS[name].depths)
    kwargs.setdefault("dims", VARIANTS[name].dims)
    deploy_after_load = pretrained and kwargs.get("deploy", False)
    if deploy_after_load:
        kwargs["deploy"] = False
    model_cls: Any = UniRepLKNet
    feature_cfg = None
    if kwargs.get("features_only") and kwargs.get("feature_cls") in (None, "list"):
        kwargs.pop("features_only")
        kwargs.pop("feature_cls", None)
        model_cls = functools.partial(UniRepLKNet, features_only=True)
    elif kwargs.get("features_only"):
        feature_cfg = dict(out_indices=(0, 1, 2, 3), feature_cls="getter")
    model = build_model_with_cfg(
        model_cls,
        variant,
        pretrained,
        pretrained_filter_fn=checkpoint_filter_fn,
        feature_cfg=feature_cfg,
        **kwargs,
    )
    if deploy_after_load:
        reparameterize(model.eval())
    return model


def create_model(
    name: str,
    *,
    num_classes: int = 1000,
    in_chans: int = 3,
    deploy: bool = False,
    pretrained: bool = False,
    checkpoint: str | os.PathLike | None = None,
    **kwargs: Any,
) -> nn.Module:
    """Build a UniRepLKNet variant, optionally loading weights.

    Args:
        name: one of :func:`list_models` (``unireplknet_a`` ... ``unireplknet_xl``), optionally with a pretrained
            tag (``unireplknet_t.in1k``, ``unireplknet_s.in22k_ft_in1k_384``: see :data:`default_cfgs`).
        num_classes: classifier outputs (0: pooled features, no Linear).
        in_chans: input channels.
        deploy: build the re-parameterized inference structure (a training-structure checkpoint is loaded into
            the training structure first, then re-parameterized).
        pretrained: load the authors' weights of the tag from the Hugging Face hub (as timm does).
        checkpoint: local ``.pth``/``.pt``/``.safetensors`` file in the authors' or our format (training or deploy
            structure), or ``hf://OWNER/REPO/FILE``; loaded strictly by
            :func:`unireplknet.checkpoint.load_checkpoint`.
        **kwargs: any other :class:`UniRepLKNet` argument (``drop_path_rate``, ``kernel_sizes``,
            ``features_only``, ``grad_checkpointing``, ...).
    """
    if pretrained and checkpoint is not None:
        raise ValueError("pass either pretrained=True (the authors' hub file of the tag) or checkpoint=, not both")
    kwargs.update(num_classes=num_classes, in_chans=in_chans)
    if checkpoint is None:
        return build_unireplknet(name, pretrained, deploy=deploy, **kwargs)
    state = load_state_dict(checkpoint)
    file_is_trained = is_training_structure(state)
    if not file_is_trained and not deploy:
        raise CheckpointError(
            f"{checkpoint} is re-parameterized (deploy structure): build the model with deploy=True to load it"
        )
    model = build_unireplknet(name, deploy=deploy and not file_is_trained, **kwargs)
    load_checkpoint(model, state)
    if deploy and file_is_trained:
        reparameterize(model.eval())
    return model


def _register(name: str) -> None:
    """Register a timm entrypoint named ``name`` (timm registers functions under their own names)."""

    def entrypoint(pretrained: bool = False, **kwargs: Any) -> nn.Module:
        return build_unireplknet(name, pretrained, **kwargs)

    entrypoint.__name__ = entrypoint.__qualname__ = name
    entrypoint.__doc__ = f"{name}: depths {VARIANTS[name].depths}, dims {VARIANTS[name].dims}."
    globals()[name] = register_model(entrypoint)


for _name in VARIANTS:
    _register(_name)
