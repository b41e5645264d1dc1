"""Layer-wise lr decay for networks built around a UniRepLKNet backbone."""

from __future__ import annotations

from torch import nn

__all__ = ["prefixed_group_matcher"]


def prefixed_group_matcher(backbone: nn.Module, prefix: str, coarse: bool = False) -> dict:
    """The backbone's timm ``group_matcher`` with its patterns moved under ``prefix`` (e.g. ``net.encoder.model.``).

    timm's ``param_groups_layer_decay`` puts parameters that match no pattern (neck, decoder, heads)
    in the last group, which trains at the full learning rate.
    """
    anchor = "^" + prefix.replace(".", r"\.")

    def moved(spec):
        if isinstance(spec, str):
            return anchor + spec.removeprefix("^")
        return [(anchor + pattern.removeprefix("^"), suffix) for pattern, suffix in spec]

    return {name: moved(spec) for name, spec in backbone.group_matcher(coarse).items()}
