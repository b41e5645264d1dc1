"""Reading and writing weights: the authors' formats, ours, safetensors, and the Hugging Face hub.

All conversion from other formats into our parameter names happens in :func:`checkpoint_filter_fn`.
Nothing here unpickles arbitrary objects: ``.pth`` files are read with ``weights_only=True``.
"""

from __future__ import annotations

import fnmatch
import logging
import os
import re
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from .variants import VARIANTS

__all__ = [
    "CheckpointError",
    "LoadReport",
    "fit_backbone",
    "checkpoint_filter_fn",
    "load_state_dict",
    "load_checkpoint",
    "save_safetensors",
    "describe_state_dict",
    "is_training_structure",
    "HF_PREFIX",
]

HF_PREFIX = "hf://"
FIRST_CONV = "stem.conv1.weight"
logger = logging.getLogger("unireplknet")


class CheckpointError(ValueError):
    """A checkpoint could not be read or does not fit the model; the message says why and what to do."""


# Reference (AILab-CVC/UniRepLKNet) name -> our name, applied in order to each key.
_REFERENCE_RENAMES: list[tuple[re.Pattern, str]] = [
    (re.compile(p), r)
    for p, r in [
        (r"^downsample_layers\.0\.0\.", "stem.conv1."),
        (r"^downsample_layers\.0\.1\.", "stem.norm1."),
        (r"^downsample_layers\.0\.3\.", "stem.conv2."),
        (r"^downsample_layers\.0\.4\.", "stem.norm2."),
        (r"^downsample_layers\.([123])\.0\.", r"stages.\1.downsample.conv."),
        (r"^downsample_layers\.([123])\.1\.", r"stages.\1.downsample.norm."),
        (r"^stages\.(\d+)\.(\d+)\.", r"stages.\1.blocks.\2."),
        (r"\.dwconv\.origin_bn\.", ".dwconv.lk_bn."),
        (r"\.dwconv\.dil_conv_k(\d+)_(\d+)\.", r".dwconv.branches.k\1_d\2.conv."),
        (r"\.dwconv\.dil_bn_k(\d+)_(\d+)\.", r".dwconv.branches.k\1_d\2.bn."),
        (r"\.pwconv1\.1\.", ".ffn.fc1."),
        (r"\.act\.1\.", ".ffn.grn."),
        (r"\.pwconv2\.0\.", ".ffn.fc2."),
        (r"\.pwconv2\.2\.", ".ffn.norm."),
        (r"^head\.(weight|bias)$", r"head.fc.\1"),
        (r"^norm\.(weight|bias)$", r"head.norm.\1"),
        (r"^norm([0-3])\.", r"stage_norms.\1."),
    ]
]


def _unwrap(obj: object) -> dict[str, torch.Tensor]:
    """Find the state dict inside common wrappers (``model``, ``state_dict``, ``model_ema``...)."""
    while isinstance(obj, Mapping) and not any(isinstance(v, torch.Tensor) for v in obj.values()):
        for key in ("state_dict", "model", "module", "model_ema", "state_dict_ema"):
            if key in obj:
                obj = obj[key]
                break
        else:
            break
    if not isinstance(obj, Mapping) or not any(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CheckpointError("the file holds no state dict (a mapping of parameter names to tensors)")
    return {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}


def checkpoint_filter_fn(state_dict: Mapping[str, object], model: nn.Module | None = None) -> dict[str, torch.Tensor]:
    """Convert any supported UniRepLKNet state dict into this package's parameter names.

    Handles the authors' training and deploy formats (including their re-parameterized
    ``dwconv.lk_origin`` naming), the wrappers ``{'model': ...}`` / ``{'state_dict': ...}``,
    MMDetection/MMSegmentation models (the authors' ``backbone.*`` keys kept, heads dropped), DDP's ``module.``
    prefix, and our own format (returned unchanged).

    With ``model`` (timm's ``pretrained_filter_fn`` signature) the result is also fitted to it
    (:func:`fit_backbone`) and checked: timm then loads non-strictly whenever it drops a classifier of another
    size, so everything but the classifier and the first conv (which timm adapts to ``in_chans``) must match
    here, or :class:`CheckpointError` names what does not.
    """
    converted = _convert(state_dict)
    if model is None:
        return converted
    converted = fit_backbone(converted, model)
    target = model.state_dict()
    adapted_by_timm = _classifier_keys(model) | {FIRST_CONV}
    missing = sorted(k for k in set(target) - set(converted) if k not in adapted_by_timm)
    unexpected = sorted(k for k in set(converted) - set(target) if k not in adapted_by_timm)
    conflicts = sorted(
        k for k in set(converted) & set(target) if converted[k].shape != target[k].shape and k not in adapted_by_timm
    )
    file_trained, model_trained = is_training_structure(converted), is_training_structure(target)
    if file_trained != model_trained or missing or unexpected or conflicts:
        raise CheckpointError(
            _mismatch_message(converted, target, file_trained, model_trained, missing, unexpected, conflicts)
        )
    return converted


def _convert(state_dict: Mapping[str, object]) -> dict[str, torch.Tensor]:
    source = {k.removeprefix("module."): v for k, v in _unwrap(state_dict).items()}
    # An MMDetection/MMSegmentation model: keep its backbone only. Other `backbone.` prefixes (our
    # own wrappers, e.g. a forecaster around the network) are left alone.
    if any(k.startswith("backbone.downsample_layers.") for k in source):
        source = {k.removeprefix("backbone."): v for k, v in source.items() if k.startswith("backbone.")}
    if not any(k.startswith("downsample_layers.") for k in source):
        return source  # already in our names (ours, or a model of our own that wraps the network)
    # In the authors' files a block's large kernel is `dwconv.lk_origin` in both structures; it is
    # our DilatedReparamBlock's `lk_conv` when the block still has branches, else the block's `dwconv`.
    trained_blocks = {k.split(".dwconv.origin_bn.")[0] for k in source if ".dwconv.origin_bn." in k}
    out: dict[str, torch.Tensor] = {}
    for key, value in source.items():
        if ".dwconv.lk_origin." in key:
            block = key.split(".dwconv.lk_origin.")[0]
            key = key.replace(".dwconv.lk_origin.", ".dwconv.lk_conv." if block in trained_blocks else ".dwconv.")
        for pattern, repl in _REFERENCE_RENAMES:
            key = pattern.sub(repl, key)
        if key.endswith((".ffn.grn.gamma", ".ffn.grn.beta")):
            value = value.reshape(-1)
        out[key] = value
    return out


def _read_file(path: Path) -> object:
    if not path.exists():
        raise CheckpointError(f"checkpoint not found: {path}")
    if path.is_dir():
        raise CheckpointError(f"checkpoint path is a folder, not a file: {path}")
    if path.suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return load_file(str(path))
        except (SafetensorError, OSError, ValueError, RuntimeError) as e:
            raise CheckpointError(
                f"cannot read {path}: not a valid safetensors file (corrupt or truncated?): {e}"
            ) from None
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises many types for bad files; all mean the same to a user
        raise CheckpointError(f"cannot read {path}: {_unreadable_reason(e)}") from None


def _unreadable_reason(error: Exception) -> str:
    """Why ``torch.load(weights_only=True)`` refused a file, without PyTorch's advice to disable that safety.

    A file that names Python globals (classes, functions: what a malicious pickle runs) fails the weights-only
    unpickler with a message that mentions the global; anything else is damage or another format.
    """
    text = str(error)
    if "weights only load failed" in text.lower() and "global" in text.lower():
        return (
            "it holds pickled Python code or objects besides tensors, which could run code when unpickled, so it "
            "was refused. Use a safetensors file or a plain state dict of tensors (the authors' .pth files are "
            "such); do not load this file with weights_only=False unless you trust whoever made it"
        )
    detail = next((line.strip() for line in text.splitlines() if "error" in line.lower()), "") or type(error).__name__
    if "weights_only" in detail:  # PyTorch's advice to disable the safety check is not passed on
        detail = type(error).__name__
    return f"the file is corrupt, truncated or not a PyTorch checkpoint ({detail[:200]})"


def resolve_hf(reference: str) -> Path:
    """Download ``hf://OWNER/REPO/FILE`` with huggingface_hub (cached) and return the local path."""
    parts = reference[len(HF_PREFIX) :].split("/")
    if len(parts) < 3:
        raise CheckpointError(f"expected hf://OWNER/REPO/FILE, got {reference!r}")
    repo_id, filename = "/".join(parts[:2]), "/".join(parts[2:])
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    try:
        return Path(hf_hub_download(repo_id, filename, etag_timeout=5))
    except (LocalEntryNotFoundError, HfHubHTTPError, OSError) as e:
        raise CheckpointError(
            f"cannot fetch {filename} from the Hugging Face repo {repo_id} ({type(e).__name__}); "
            f"download it elsewhere and pass its local path, e.g. checkpoint='/path/to/{filename}'"
        ) from None


def load_state_dict(source: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Read a checkpoint file (or ``hf://`` reference) and return it in this package's names."""
    source = str(source)
    path = resolve_hf(source) if source.startswith(HF_PREFIX) else Path(source).expanduser()
    return _convert(_read_file(path))


def is_training_structure(state_dict: Mapping[str, torch.Tensor]) -> bool:
    """True for a (converted) state dict with BatchNorm statistics, i.e. not re-parameterized."""
    return any(k.endswith(".ffn.norm.running_var") for k in state_dict)


def describe_state_dict(state_dict: Mapping[str, torch.Tensor]) -> str:
    """A short guess of what a (converted) state dict was made for: variant, in_chans, classes, structure."""
    parts = []
    dims = []
    for i in range(4):
        ln = state_dict.get("stem.norm2.weight" if i == 0 else f"stages.{i}.downsample.norm.weight")
        dims.append(int(ln.shape[0]) if ln is not None else None)
    depths = [len({k.split(".")[3] for k in state_dict if k.startswith(f"stages.{i}.blocks.")}) for i in range(4)]
    names = [n for n, v in VARIANTS.items() if list(v.dims) == dims and list(v.depths) == depths]
    parts.append(f"variant {names[0]}" if names else f"depths {depths}, dims {dims}")
    if "stem.conv1.weight" in state_dict:
        parts.append(f"in_chans={state_dict['stem.conv1.weight'].shape[1]}")
    fc = state_dict.get("head.fc.weight")
    parts.append(f"num_classes={fc.shape[0]}" if fc is not None else "no classifier (num_classes=0 or a backbone)")
    parts.append("training structure" if is_training_structure(state_dict) else "deploy structure (re-parameterized)")
    return ", ".join(parts)


@dataclass
class LoadReport:
    """What :func:`load_checkpoint` did: ``loaded`` of the model's ``total`` tensors came from the file; ``kept``
    are the model's tensors left as they were (allowed by ``finetune`` or ``skip``), ``ignored`` the file's
    tensors not used."""

    loaded: int
    total: int
    kept: list[str] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)
    adapted: list[str] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        return not self.kept and not self.ignored and not self.adapted

    def __str__(self) -> str:
        text = f"loaded {self.loaded} of {self.total} tensors"
        if self.kept:
            text += f"; kept the model's own {_show(self.kept)}"
        if self.ignored:
            text += f"; ignored from the file {_show(self.ignored)}"
        if self.adapted:
            text += "; " + "; ".join(self.adapted)
        return text


def _show(keys: list[str], limit: int = 8) -> str:
    return ", ".join(keys[:limit]) + (f" ... (+{len(keys) - limit} more)" if len(keys) > limit else "")


def _classifier_keys(model: nn.Module) -> set[str]:
    """State-dict names of the model's final classifier (``get_classifier()``), or of ``head.fc``."""
    names = {"head.fc.weight", "head.fc.bias"}
    get_classifier = getattr(model, "get_classifier", None)
    classifier = get_classifier() if callable(get_classifier) else None
    for prefix, module in model.named_modules():
        if classifier is not None and module is classifier and prefix:
            names |= {f"{prefix}.{n}" for n, _ in module.named_parameters()}
    return names


def fit_backbone(state: Mapping[str, torch.Tensor], model: nn.Module) -> dict[str, torch.Tensor]:
    """The weights of ``state`` as a ``features_only`` UniRepLKNet backbone takes them.

    A backbone has per-stage LayerNorms (``stage_norms``, the authors' ``norm0..3``) and no classifier.
    ImageNet classification files have the classifier and no stage norms; the authors' detection/segmentation
    files have the stage norms. Both fit: ``head.*`` is dropped, and absent stage norms start as identity
    (weight 1, bias 0); a file with only some of them is an error. Other models get ``state`` unchanged.
    """
    if not getattr(model, "features_only", False) or not hasattr(model, "stage_norms"):
        return dict(state)
    state = {k: v for k, v in state.items() if not k.startswith("head.")}
    target = model.state_dict()
    norm_keys = [k for k in target if k.startswith("stage_norms.")]
    present = [k for k in norm_keys if k in state]
    if not present:
        for key in norm_keys:
            state[key] = torch.ones(target[key].shape) if key.endswith(".weight") else torch.zeros(target[key].shape)
    elif len(present) != len(norm_keys):
        raise CheckpointError(
            f"checkpoint has only some of the per-stage norms (missing {', '.join(sorted(set(norm_keys) - set(present)))})"
        )
    return state


def load_checkpoint(
    model: nn.Module,
    source: str | os.PathLike | Mapping[str, torch.Tensor],
    *,
    finetune: bool = False,
    skip: Sequence[str] = (),
    structure: str = "model",
) -> LoadReport:
    """Load weights into ``model`` from a file, ``hf://`` reference or state dict, in any supported format.

    The one loading path of the package. Strict: every tensor of the model must come from the file with its
    shape, and every tensor of the file must be used, except

    * ``finetune=True``: a classifier (``get_classifier()``, else ``head.fc``) that the file lacks or holds in
      another shape keeps its fresh initialisation, and the file's classifier is ignored; a first conv
      (``stem.conv1``) for another number of input channels is adapted as timm does (``adapt_input_conv``:
      summed to 1 channel, tiled and rescaled to more);
    * ``skip``: names or ``fnmatch`` patterns (``"head.*"``, ``"stages.3.*"``) of tensors that may be missing,
      unexpected or of another shape.

    Anything else raises :class:`CheckpointError` listing missing/unexpected keys and shape conflicts with a
    guess of what the file fits. ``features_only`` backbones take classification and detection/segmentation files
    (:func:`fit_backbone`). The structure is decided before loading, never mixed: with ``structure="model"`` a
    training-structure file needs a training-structure model and a re-parameterized file a deploy model; with
    ``structure="file"`` a training-structure model given a re-parameterized file is re-parameterized in place
    first. Every load that leaves something out logs its :class:`LoadReport` ("loaded N of M tensors ...") as a
    warning on the ``unireplknet`` logger.
    """
    if structure not in ("model", "file"):
        raise ValueError(f"structure must be 'model' or 'file', got {structure!r}")
    state = _convert(source) if isinstance(source, Mapping) else load_state_dict(source)
    state = fit_backbone(state, model)
    file_trained, model_trained = is_training_structure(state), is_training_structure(model.state_dict())
    if model_trained and not file_trained and structure == "file" and _deploy_fits(model, state):
        from .reparam import reparameterize

        reparameterize(model.eval())
        model_trained = False
    target = model.state_dict()
    missing = sorted(set(target) - set(state))
    unexpected = sorted(set(state) - set(target))
    conflicts = sorted(k for k in set(state) & set(target) if state[k].shape != target[k].shape)

    allowed = set()
    adapted = ""
    if finetune and FIRST_CONV in conflicts and _only_in_chans_differ(state[FIRST_CONV], target[FIRST_CONV]):
        from timm.models import adapt_input_conv

        in_chans = target[FIRST_CONV].shape[1]
        adapted = f"{FIRST_CONV} adapted from {state[FIRST_CONV].shape[1]} to {in_chans} input channels"
        state = {**state, FIRST_CONV: adapt_input_conv(in_chans, state[FIRST_CONV].float()).to(state[FIRST_CONV])}
        conflicts.remove(FIRST_CONV)
    if finetune:
        classifier = _classifier_keys(model)
        head_problems = [k for k in (*missing, *unexpected, *conflicts) if k in classifier]
        if head_problems:
            allowed |= classifier
    if skip:
        allowed |= {k for k in (*missing, *unexpected, *conflicts) if any(fnmatch.fnmatchcase(k, p) for p in skip)}
    bad_missing = [k for k in missing if k not in allowed]
    bad_unexpected = [k for k in unexpected if k not in allowed]
    bad_conflicts = [k for k in conflicts if k not in allowed]
    if file_trained != model_trained or bad_missing or bad_unexpected or bad_conflicts:
        raise CheckpointError(
            _mismatch_message(state, target, file_trained, model_trained, bad_missing, bad_unexpected, bad_conflicts)
        )
    usable = {k: v for k, v in state.items() if k in target and k not in conflicts}
    model.load_state_dict(usable, strict=False)
    report = LoadReport(
        loaded=len(usable),
        total=len(target),
        kept=sorted(set(missing) | set(conflicts)),
        ignored=sorted(set(unexpected) | set(conflicts)),
    )
    if adapted:
        report.adapted.append(adapted)
    if not report.complete:
        logger.warning("%s", report)
    return report


def _only_in_chans_differ(source: torch.Tensor, target: torch.Tensor) -> bool:
    return source.dim() == 4 and source.shape[0] == target.shape[0] and source.shape[2:] == target.shape[2:]


def _deploy_fits(model: nn.Module, state: Mapping[str, torch.Tensor]) -> bool:
    """Whether ``model``'s re-parameterized structure has exactly the keys of ``state`` (checked on a meta copy)."""
    import copy

    from .reparam import reparameterize

    with torch.device("meta"):
        probe = copy.deepcopy(model).to("meta")
    return set(reparameterize(probe.eval()).state_dict()) == set(state)


def _mismatch_message(
    state: Mapping[str, torch.Tensor],
    target: Mapping[str, torch.Tensor],
    file_trained: bool,
    model_trained: bool,
    missing: list[str],
    unexpected: list[str],
    conflicts: list[str],
) -> str:
    lines = [f"checkpoint does not fit the model: it looks like {describe_state_dict(state)}"]
    lines.append(f"the model is {describe_state_dict(target)}")
    if file_trained and not model_trained:
        lines.append(
            "hint: build the model in the training structure, load, then call unireplknet.reparameterize(model) "
            "(create_model(..., deploy=True, checkpoint=FILE) does this for you)"
        )
    elif model_trained and not file_trained:
        lines.append("hint: the file is re-parameterized; build the model with deploy=True")
    if missing:
        lines.append(f"missing keys ({len(missing)}): {_show(missing)}")
    if unexpected:
        lines.append(f"unexpected keys ({len(unexpected)}): {_show(unexpected)}")
    if conflicts:
        lines.append(
            f"shape conflicts ({len(conflicts)}): "
            + _show([f"{k} file {tuple(state[k].shape)} vs model {tuple(target[k].shape)}" for k in conflicts])
        )
    if missing or unexpected or conflicts:
        lines.append(
            "to fine-tune with a new classifier pass finetune=True; to leave other tensors out, name them in "
            "skip=[...] (names or patterns)"
        )
    return "\n  ".join(lines)


def save_safetensors(
    state_dict: Mapping[str, torch.Tensor], path: str | os.PathLike, metadata: dict[str, str] | None = None
) -> Path:
    """Write ``state_dict`` as safetensors atomically: a crash never leaves a half-written file."""
    from safetensors import SafetensorError
    from safetensors.torch import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().contiguous().cpu() for k, v in state_dict.items()}
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        try:
            save_file(tensors, tmp, metadata=metadata)
        except SafetensorError as e:  # an I/O failure (full disk...) comes as "... (os error 28)"
            code = re.search(r"os error (\d+)", str(e))
            if code is None:
                raise
            raise OSError(int(code.group(1)), os.strerror(int(code.group(1))), str(path)) from None
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path
