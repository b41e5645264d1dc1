"""ONNX and TorchScript exports of the deploy structure against PyTorch, on a tiny model."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

import unireplknet
from unireplknet.export import export_onnx, export_torchscript

TINY = {"depths": (1, 1, 1, 1), "dims": (8, 16, 32, 64), "kernel_sizes": ((3,), (7,), (7,), (3,))}


@pytest.fixture(scope="module")
def trained_structure_model() -> torch.nn.Module:
    torch.manual_seed(0)
    model = unireplknet.create_model("unireplknet_a", num_classes=5, **TINY)
    for module in model.modules():  # non-trivial norms, so folding them is really exercised
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.normal_(0, 0.2)
            module.running_var.uniform_(0.5, 2.0)
            module.weight.data.normal_(1, 0.2)
            module.bias.data.normal_(0, 0.2)
        if isinstance(module, unireplknet.GRN):
            module.gamma.data.normal_(0, 0.2)
            module.beta.data.normal_(0, 0.2)
    return model.eval()


def _expected(model: torch.nn.Module, x: torch.Tensor) -> np.ndarray:
    with torch.no_grad():
        return model(x).numpy()


def test_onnx_matches_pytorch_with_dynamic_batch(trained_structure_model, tmp_path):
    ort = pytest.importorskip("onnxruntime")
    import onnx

    path = export_onnx(trained_structure_model, tmp_path / "tiny.onnx", input_size=(3, 32, 32), opset=17)
    graph = onnx.load(str(path))
    assert max(o.version for o in graph.opset_import if o.domain in ("", "ai.onnx")) >= 17
    assert trained_structure_model.stages[1].blocks[0].dwconv.branches is not None  # caller's model untouched
    assert not any(node.op_type == "BatchNormalization" for node in graph.graph.node)  # deploy structure
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for batch in (1, 3):
        x = torch.randn(batch, 3, 32, 32)
        (actual,) = session.run(None, {"input": x.numpy()})
        np.testing.assert_allclose(actual, _expected(trained_structure_model, x), atol=1e-4, rtol=1e-4)


def test_onnx_features_only_outputs(tmp_path):
    ort = pytest.importorskip("onnxruntime")
    model = unireplknet.create_model("unireplknet_a", features_only=True, **TINY).eval()
    path = export_onnx(model, tmp_path / "pyramid.onnx", input_size=(3, 32, 32))
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x = torch.randn(2, 3, 32, 32)
    actual = session.run(None, {"input": x.numpy()})
    with torch.no_grad():
        expected = model(x)
    assert [o.name for o in session.get_outputs()] == ["output0", "output1", "output2", "output3"]
    for a, e in zip(actual, expected, strict=True):
        np.testing.assert_allclose(a, e.numpy(), atol=1e-4, rtol=1e-4)


def test_torchscript_matches_pytorch_for_other_batch_and_size(trained_structure_model, tmp_path):
    path = export_torchscript(trained_structure_model, tmp_path / "tiny.pt", input_size=(3, 32, 32))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        loaded = torch.jit.load(str(path))
    for shape in ((1, 3, 32, 32), (2, 3, 64, 48)):
        x = torch.randn(shape)
        with torch.no_grad():
            actual = loaded(x).numpy()
        np.testing.assert_allclose(actual, _expected(trained_structure_model, x), atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"opset": 13}, "opset must be >= 17"), ({"input_size": (32, 32)}, "input_size must be")],
)
def test_bad_arguments_are_clear_errors(trained_structure_model, tmp_path, kwargs, message):
    with pytest.raises(ValueError, match=message):
        export_onnx(trained_structure_model, tmp_path / "x.onnx", **kwargs)


def test_missing_output_directory_is_a_clear_error(trained_structure_model, tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        export_torchscript(trained_structure_model, tmp_path / "missing" / "x.pt", input_size=(3, 32, 32))
