"""Checkpoint loading in every supported format, safe reading, clear errors and atomic saving."""

from __future__ import annotations

import os

import pytest
import torch
from conftest import GOLDEN_A224, golden_state_dict

import unireplknet
from unireplknet.checkpoint import CheckpointError, describe_state_dict, load_checkpoint, save_safetensors

TINY = dict(depths=(1, 1, 2, 1), dims=(8, 16, 24, 32), kernel_sizes=((3,), (13,), (13, 3), (7,)))


@pytest.fixture(scope="module")
def reference_state():
    return golden_state_dict(GOLDEN_A224)[1]


@pytest.fixture(scope="module")
def reference_model(reference_state):
    model = unireplknet.create_model("unireplknet_a")
    assert load_checkpoint(model, reference_state).complete
    return model


def _same(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return set(sa) == set(sb) and all(torch.equal(sa[k], sb[k]) for k in sa)


@pytest.mark.parametrize("wrap", ["raw", "model", "state_dict", "module_prefix", "state_dict_module"])
def test_authors_file_in_every_wrapping(tmp_path, reference_state, reference_model, wrap):
    state = dict(reference_state)
    if "module" in wrap:
        state = {f"module.{k}": v for k, v in state.items()}
    if wrap in ("model", "state_dict"):
        state = {wrap: state}
    elif wrap == "state_dict_module":
        state = {"state_dict": state}
    path = tmp_path / "weights.pth"
    torch.save(state, path)
    model = unireplknet.create_model("unireplknet_a", checkpoint=path)
    assert _same(model, reference_model)


def test_safetensors_round_trip_is_atomic_and_exact(tmp_path, reference_model):
    path = save_safetensors(reference_model.state_dict(), tmp_path / "a.safetensors", metadata={"variant": "a"})
    assert sorted(os.listdir(tmp_path)) == ["a.safetensors"]  # no temporary file left behind
    assert _same(unireplknet.create_model("unireplknet_a", checkpoint=path), reference_model)


def test_failed_save_keeps_the_old_file(tmp_path, reference_model):
    path = save_safetensors({"x": torch.ones(2)}, tmp_path / "w.safetensors")
    before = path.read_bytes()
    with pytest.raises(Exception):  # noqa: B017 - any failure inside the writer
        save_safetensors({"x": "not a tensor"}, path)  # type: ignore[dict-item]
    assert path.read_bytes() == before and sorted(os.listdir(tmp_path)) == ["w.safetensors"]


def test_mismatch_lists_keys_and_guesses_what_the_file_is(reference_state):
    model = unireplknet.create_model("unireplknet_a", num_classes=10, in_chans=1)
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(model, reference_state)
    text = str(err.value)
    assert "variant unireplknet_a, in_chans=3, num_classes=1000, training structure" in text
    assert "shape conflicts (3)" in text and "stem.conv1.weight" in text and "head.fc.weight" in text


def test_train_file_into_deploy_structure_is_explained(reference_state):
    model = unireplknet.create_model("unireplknet_a", deploy=True)
    with pytest.raises(CheckpointError, match="missing keys") as err:
        load_checkpoint(model, reference_state)
    assert "training structure" in str(err.value) and "the model is variant unireplknet_a" in str(err.value)
    assert "unexpected keys" in str(err.value) and "unireplknet.reparameterize(model)" in str(err.value)


def test_other_variant_is_named(reference_state):
    with torch.device("meta"):
        model = unireplknet.create_model("unireplknet_f")
    with pytest.raises(CheckpointError, match="looks like variant unireplknet_a"):
        load_checkpoint(model, {k: v.to("meta") for k, v in reference_state.items()})


def test_finetune_starts_a_classifier_of_another_size_fresh_and_says_so(reference_state, reference_model, caplog):
    model = unireplknet.create_model("unireplknet_a", num_classes=10)
    fresh = model.head.fc.weight.clone()
    with caplog.at_level("WARNING", logger="unireplknet"):
        report = load_checkpoint(model, reference_state, finetune=True)
    assert torch.equal(model.stem.conv1.weight, reference_model.stem.conv1.weight)
    assert torch.equal(model.head.fc.weight, fresh) and model.head.fc.weight.shape == (10, 320)
    total = len(model.state_dict())
    assert (report.loaded, report.total) == (total - 2, total)
    assert report.kept == ["head.fc.bias", "head.fc.weight"] and report.ignored == ["head.fc.bias", "head.fc.weight"]
    assert f"loaded {total - 2} of {total} tensors" in caplog.text and "head.fc.weight" in caplog.text


def test_finetune_refuses_another_variant_and_unrelated_tensors(reference_state):
    """Issue 13 case 1: an F file into an A model matched 85 of 626 tensors silently; unrelated tensors 'loaded'."""
    f_file = unireplknet.create_model("unireplknet_f", num_classes=10).state_dict()
    with pytest.raises(CheckpointError, match="shape conflicts") as err:
        load_checkpoint(unireplknet.create_model("unireplknet_a", num_classes=10), f_file, finetune=True)
    assert "looks like variant unireplknet_f" in str(err.value)
    with pytest.raises(CheckpointError, match="missing keys"):
        load_checkpoint(unireplknet.create_model("unireplknet_a"), {"encoder.weight": torch.ones(3)}, finetune=True)


def test_finetune_adapts_the_first_conv_to_other_input_channels(reference_state, caplog):
    model = unireplknet.create_model("unireplknet_a", num_classes=5, in_chans=1)
    with caplog.at_level("WARNING", logger="unireplknet"):
        load_checkpoint(model, reference_state, finetune=True)
    summed = reference_state["downsample_layers.0.0.weight"].sum(dim=1, keepdim=True)
    assert torch.allclose(model.stem.conv1.weight, summed)
    assert "stem.conv1.weight adapted from 3 to 1 input channels" in caplog.text
    with pytest.raises(CheckpointError, match="stem.conv1.weight"):  # only fine-tuning adapts it
        load_checkpoint(unireplknet.create_model("unireplknet_a", in_chans=1), reference_state)


def test_skip_names_what_may_be_left_out(reference_state, reference_model):
    trimmed = {k: v for k, v in reference_state.items() if not k.startswith("stages.3.")}
    model = unireplknet.create_model("unireplknet_a")
    with pytest.raises(CheckpointError, match="missing keys"):
        load_checkpoint(model, trimmed)
    with pytest.raises(CheckpointError, match="missing keys"):  # a pattern that does not cover them
        load_checkpoint(model, trimmed, skip=["stages.2.*"])
    report = load_checkpoint(model, trimmed, skip=["stages.3.*"])
    assert report.kept and all(k.startswith("stages.3.") for k in report.kept) and not report.ignored
    assert torch.equal(model.stem.conv1.weight, reference_model.stem.conv1.weight)
    assert report.loaded == report.total - len(report.kept)


def test_structure_is_decided_before_loading(reference_model):
    """Issue 13 case 1: a deploy file into a training model put fused kernels in front of unloaded BatchNorms."""
    import copy

    deployed = unireplknet.reparameterize(copy.deepcopy(reference_model).eval())
    model = unireplknet.create_model("unireplknet_a")
    with pytest.raises(CheckpointError, match="build the model with deploy=True"):
        load_checkpoint(model, deployed.state_dict())
    with pytest.raises(CheckpointError, match="build the model with deploy=True"):
        load_checkpoint(model, deployed.state_dict(), skip=["*"])  # never mixed, whatever may be skipped
    assert load_checkpoint(model, deployed.state_dict(), structure="file").complete
    assert model.is_deploy and _same(model, deployed)
    with pytest.raises(CheckpointError, match="deploy=True"):
        unireplknet.create_model("unireplknet_a", checkpoint=_saved(deployed))


def _saved(model: torch.nn.Module) -> str:
    import tempfile

    path = os.path.join(tempfile.mkdtemp(), "w.safetensors")
    save_safetensors(model.state_dict(), path)
    return path


@pytest.mark.parametrize("damage", ["truncate", "garbage", "empty"])
def test_corrupt_files_give_a_clear_error(tmp_path, damage):
    good = tmp_path / "good.pth"
    torch.save(unireplknet.UniRepLKNet(num_classes=2, **TINY).state_dict(), good)
    data = good.read_bytes()
    bad = tmp_path / "bad.pth"
    bad.write_bytes({"truncate": data[: len(data) // 2], "garbage": os.urandom(4096), "empty": b""}[damage])
    with pytest.raises(CheckpointError, match="corrupt, truncated or not a PyTorch checkpoint"):
        unireplknet.load_state_dict(bad)
    bad_st = tmp_path / "bad.safetensors"
    bad_st.write_bytes(data[:100])
    with pytest.raises(CheckpointError, match="not a valid safetensors file"):
        unireplknet.load_state_dict(bad_st)


class Payload:  # any non-tensor object: a pickle could run code when loaded
    pass


def test_pickled_objects_are_refused(tmp_path):
    path = tmp_path / "evil.pth"
    torch.save({"model": Payload()}, path)
    with pytest.raises(CheckpointError, match="pickled Python code or objects besides tensors"):
        unireplknet.load_state_dict(path)


def test_missing_file_and_no_state_dict(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        unireplknet.load_state_dict(tmp_path / "nope.pth")
    torch.save({"epoch": 3}, tmp_path / "meta.pth")
    with pytest.raises(CheckpointError, match="no state dict"):
        unireplknet.load_state_dict(tmp_path / "meta.pth")


def test_hub_failure_is_fast_and_names_the_file(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    import huggingface_hub.constants as c

    monkeypatch.setattr(c, "HF_HUB_OFFLINE", True)
    with pytest.raises(CheckpointError) as err:
        unireplknet.create_model(
            "unireplknet_a", checkpoint="hf://DingXiaoH/UniRepLKNet/unireplknet_a_in1k_224_acc77.03.pth"
        )
    assert "unireplknet_a_in1k_224_acc77.03.pth" in str(err.value) and "local path" in str(err.value)


def test_describe_our_own_formats():
    model = unireplknet.UniRepLKNet(num_classes=4, in_chans=2, deploy=True, **TINY)
    assert describe_state_dict(model.state_dict()) == (
        "depths [1, 1, 2, 1], dims [8, 16, 24, 32], in_chans=2, num_classes=4, deploy structure (re-parameterized)"
    )


def test_mmseg_backbone_is_extracted_but_our_own_wrappers_are_not_touched(reference_state, reference_model):
    mmseg = {f"backbone.{k}": v for k, v in reference_state.items()}
    mmseg["decode_head.conv_seg.weight"] = torch.zeros(150, 512, 1, 1)
    mmseg["auxiliary_head.conv.weight"] = torch.zeros(3, 3)
    model = unireplknet.create_model("unireplknet_a")
    load_checkpoint(model, {"state_dict": mmseg, "meta": {}})
    assert _same(model, reference_model)


def test_our_own_wrapper_models_pass_through_unchanged():
    from torch import nn

    class Forecaster(nn.Module):  # attribute names that collide with the authors' top-level names
        def __init__(self):
            super().__init__()
            self.norm = nn.LayerNorm(4)
            self.head = nn.Linear(4, 2)
            self.backbone = unireplknet.UniRepLKNet(num_classes=0, **TINY)

    model = Forecaster()
    state = model.state_dict()
    assert unireplknet.checkpoint_filter_fn(state).keys() == state.keys()
    load_checkpoint(Forecaster(), state)


def test_a_hostile_pickle_is_called_that_and_never_runs(tmp_path):
    """Issue 13 case 9: the message says the file holds code, never advises weights_only=False."""
    marker = tmp_path / "ran"

    class Hostile:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    path = tmp_path / "hostile.pth"
    torch.save({"model": Hostile()}, path)
    with pytest.raises(CheckpointError) as err:
        unireplknet.load_state_dict(path)
    text = str(err.value)
    assert "pickled Python code" in text and "safetensors" in text and "refused" in text
    assert "weights_only` set to `False`" not in text and "two options" not in text
    assert not marker.exists()


def test_the_refusal_does_not_depend_on_pytorchs_capitalisation():
    from unireplknet.checkpoint import _unreadable_reason

    for wording in ("Unsupported global: GLOBAL os.system", "unsupported GLOBAL posix.system"):
        reason = _unreadable_reason(RuntimeError(f"Weights only load failed. ... WeightsUnpickler error: {wording}"))
        assert "pickled Python code" in reason
    assert "corrupt" in _unreadable_reason(RuntimeError("PytorchStreamReader failed reading zip archive"))


@pytest.mark.parametrize(
    "metadata",
    [
        '{"__map__": [1, 2]}',
        "not json",
        "[1, 2]",
        '{"__map__": {"config": {"__tensor_key__": "x"}}}',
        '{"__map__": {"config": 3}}',
    ],
)
def test_malformed_metadata_names_the_file(tmp_path, metadata):
    """Issue 13 case 8: crafted safetensors metadata ended in AttributeError/KeyError without the file's name."""
    from unireplknet.engine.state import read_metadata

    path = save_safetensors({"w": torch.ones(2)}, tmp_path / "crafted.safetensors", metadata={"unireplknet": metadata})
    with pytest.raises(CheckpointError, match="crafted.safetensors"):
        read_metadata(path)


def test_config_fine_tuning_takes_checkpoint_skip(tmp_path, reference_state):
    """``model.checkpoint`` fine-tunes strictly; ``model.checkpoint_skip`` names what else may be left out."""
    from unireplknet.tasks.classification import build_classifier

    trimmed = {k: v for k, v in reference_state.items() if not k.startswith("stages.3.")}
    path = tmp_path / "trimmed.pth"
    torch.save(trimmed, path)
    cfg = {"model": {"name": "unireplknet_a", "checkpoint": str(path), "checkpoint_skip": []}}
    with pytest.raises(CheckpointError, match="missing keys"):
        build_classifier(cfg, num_classes=10)
    cfg["model"]["checkpoint_skip"] = ["stages.3.*"]
    model = build_classifier(cfg, num_classes=10)
    assert torch.equal(model.stem.conv1.weight, reference_state["downsample_layers.0.0.weight"])
