"""Our models reproduce the authors' implementation on the golden fixtures (tests/golden)."""

from __future__ import annotations

import golden
import pytest
import torch
from conftest import GOLDEN_A224, golden_state_dict

import unireplknet
from unireplknet.checkpoint import checkpoint_filter_fn

FIXTURES = golden.fixture_stems()
TOL_FP64 = 1e-9
TOL_FP32 = 1e-4


def test_fixtures_present():
    assert len(FIXTURES) == 3, f"expected the three golden fixtures in {golden.HERE}"


@pytest.fixture(scope="module", params=FIXTURES)
def case(request):
    return golden_state_dict(request.param)


def _model(expected, **kwargs):
    return unireplknet.create_model(
        expected["model"], num_classes=expected["num_classes"], in_chans=expected["in_chans"], **kwargs
    )


def _max_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return (a.double() - b.double()).abs().max().item()


@torch.no_grad()
def test_train_structure_fp64_and_reparameterized_and_deploy(case):
    expected, state = case
    model = _model(expected)
    unireplknet.load_checkpoint(model, state)  # strict: nothing missing or unexpected
    model = model.double().eval()
    x = expected["input"].double()
    assert _max_err(model(x), expected["logits_fp64"]) < TOL_FP64

    unireplknet.reparameterize(model)
    assert model.is_deploy
    assert _max_err(model(x), expected["logits_fp64_reparameterized"]) < TOL_FP64

    # the deploy structure built directly, loading the re-parameterized weights, computes the same
    deployed = _model(expected, deploy=True).double().eval()
    unireplknet.load_checkpoint(deployed, model.state_dict())
    assert _max_err(deployed(x), expected["logits_fp64_reparameterized"]) < TOL_FP64


@torch.no_grad()
def test_train_structure_fp32(case):
    expected, state = case
    model = _model(expected)
    unireplknet.load_checkpoint(model, state)
    assert _max_err(model.eval()(expected["input"].float()), expected["logits_fp32"]) < TOL_FP32
    unireplknet.reparameterize(model)
    assert _max_err(model(expected["input"].float()), expected["logits_fp32"]) < TOL_FP32


def _reference_deploy_names(manifest: dict, ours: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Our re-parameterized weights under the reference's deploy-file names (the manifest's keys)."""
    ref_keys = list(manifest["unireplknet_a"]["state_dict_deploy"])
    converted = checkpoint_filter_fn({k: torch.empty(0) for k in ref_keys})
    to_ref = dict(zip(converted, ref_keys, strict=True))
    out = {}
    for key, value in ours.items():
        ref_shape = manifest["unireplknet_a"]["state_dict_deploy"][to_ref[key]]
        out[to_ref[key]] = value.reshape(ref_shape)
    return out


@torch.no_grad()
def test_authors_deploy_file(tmp_path, manifest):
    """The authors' re-parameterized file: its values agree with our fp32 merge, and its format loads.

    The authors' file (fp32 weights merged in fp32) is kept as a fingerprint per tensor. Our fp32 merge differs
    from theirs only by summation order: within 1e-5 per element, so sums within ``numel * 1e-5`` and projections
    within ``1e-5 * ||projection||_1``. Their file's names are the manifest's deploy keys: a file written under
    those names loads into the deploy structure and computes the reference's outputs.
    """
    expected, state = golden_state_dict(GOLDEN_A224)
    ours = unireplknet.create_model("unireplknet_a")
    unireplknet.load_checkpoint(ours, state)
    unireplknet.reparameterize(ours.eval())
    reference_file = _reference_deploy_names(manifest, ours.state_dict())
    theirs = golden.load_fingerprint(GOLDEN_A224)
    assert set(theirs) == set(reference_file)
    mine = golden.fingerprint(reference_file)
    for key, stats in theirs.items():
        numel = reference_file[key].numel()
        assert abs(mine[key]["sum"] - stats["sum"]) <= 1e-5 * numel, key
        assert abs(mine[key]["l2"] - stats["l2"]) <= 1e-5 * numel**0.5, key
        assert abs(mine[key]["proj"] - stats["proj"]) <= 1e-5 * golden.projection(numel).abs().sum().item(), key

    path = tmp_path / "authors.deploy.pth"
    torch.save(reference_file, path)
    deployed = unireplknet.create_model("unireplknet_a", deploy=True, checkpoint=path)
    assert deployed.is_deploy
    x = expected["input"]
    assert _max_err(deployed.double().eval()(x.double()), expected["logits_fp64_reparameterized"]) < 1e-6
    assert _max_err(deployed.float()(x.float()), expected["logits_fp32"]) < TOL_FP32


def test_fingerprint_tells_files_apart():
    """The fingerprint check above can fail: one element changed by 1e-3 moves the projection past its bound."""
    a = {"w": torch.randn(1000, dtype=torch.float64)}
    b = {"w": a["w"].clone()}
    b["w"][17] += 1e-3
    fa, fb = golden.fingerprint(a)["w"], golden.fingerprint(b)["w"]
    assert (
        abs(fa["proj"] - fb["proj"]) > 1e-6 * golden.projection(1000).abs().sum().item()
        or abs(fa["sum"] - fb["sum"]) > 1e-6 * 1000
    )


@torch.no_grad()
def test_create_model_deploy_from_training_checkpoint(tmp_path):
    expected, state = golden_state_dict(GOLDEN_A224)
    path = tmp_path / "authors.train.pth"
    torch.save(state, path)
    model = unireplknet.create_model("unireplknet_a", deploy=True, checkpoint=path)
    assert model.is_deploy and not model.training
    assert _max_err(model(expected["input"]), expected["logits_fp32"]) < TOL_FP32


@pytest.mark.parametrize("name", unireplknet.list_models())
def test_parameter_counts_and_names_match_reference(name, manifest):
    ref = manifest[name]
    with torch.device("meta"):
        train = unireplknet.create_model(name)
        deploy = unireplknet.create_model(name, deploy=True)
    for model, structure in ((train, "train"), (deploy, "deploy")):
        count = sum(p.numel() for p in model.parameters())
        assert count == ref[f"params_{structure}"], structure
        # every reference key converts to one of ours, with the same number of elements
        ref_shapes = {k: torch.empty(s, device="meta") for k, s in ref[f"state_dict_{structure}"].items()}
        converted = checkpoint_filter_fn(ref_shapes)
        ours = model.state_dict()
        assert set(converted) == set(ours), structure
        assert all(converted[k].numel() == ours[k].numel() for k in ours), structure
