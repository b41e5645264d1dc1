"""CPU inference optimisations: exact against the plain model, and the caller's model is left alone."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import unireplknet
from unireplknet import fast as fast_module
from unireplknet.fast import FusedInferenceBlock, optimize_for_inference
from unireplknet.layers import UniRepLKNetBlock

TINY = {"depths": (1, 1, 1, 1), "dims": (8, 16, 32, 64), "kernel_sizes": ((3,), (7,), (7,), (3,))}
needs_onednn = pytest.mark.skipif(not torch.backends.mkldnn.is_available(), reason="needs a oneDNN build of PyTorch")


def _randomise_norms(model: torch.nn.Module) -> torch.nn.Module:
    torch.manual_seed(0)
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.normal_(0, 0.2)
            module.running_var.uniform_(0.5, 2.0)
            module.weight.data.normal_(1, 0.2)
        if isinstance(module, unireplknet.GRN):
            module.gamma.data.normal_(0, 0.5)
            module.beta.data.normal_(0, 0.2)
    return model.eval()


def _fused_block(channels: int, kernel_size: int) -> tuple[UniRepLKNetBlock, FusedInferenceBlock]:
    block = _randomise_norms(UniRepLKNetBlock(channels, kernel_size))
    unireplknet.reparameterize(block)
    return block, FusedInferenceBlock(block).requires_grad_(False)


@pytest.mark.parametrize("fuse", [True, False])
@pytest.mark.parametrize("batch", [1, 3])
def test_optimized_model_matches_plain_model(fuse, batch):
    model = _randomise_norms(unireplknet.create_model("unireplknet_a", num_classes=7, **TINY))
    fast = optimize_for_inference(model, fuse=fuse)
    assert isinstance(model.stages[0].blocks[0], UniRepLKNetBlock)  # the original is untouched
    assert isinstance(fast.stages[0].blocks[0], FusedInferenceBlock) == fuse
    x = torch.randn(batch, 3, 64, 64)
    with torch.no_grad():
        expected = model(x)
        actual = fast(x.contiguous(memory_format=torch.channels_last))
    torch.testing.assert_close(actual, expected, atol=1e-4, rtol=1e-4)


@needs_onednn
@pytest.mark.parametrize(("channels", "size", "kernel_size"), [(8, 16, 7), (32, 2, 5), (16, 5, 3)])
def test_fused_block_onednn_and_plain_paths_match_block(channels, size, kernel_size):
    block, fused = _fused_block(channels, kernel_size)
    x = torch.randn(2, channels, size, size)
    x_cl = x.contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        expected = block(x)
        onednn = fused(x_cl)
    assert fused.fc1.weight in fast_module._PACKED  # the oneDNN path ran
    # An input that needs a gradient takes the plain-PyTorch path (oneDNN's fused linears have no backward).
    plain = fused(x_cl.clone().requires_grad_())
    assert plain.grad_fn is not None
    torch.testing.assert_close(onednn, expected, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(plain.detach(), expected, atol=1e-5, rtol=1e-5)
    assert onednn.is_contiguous(memory_format=torch.channels_last)


@needs_onednn
def test_fused_block_leaves_its_input_alone_and_accepts_nchw():
    block, fused = _fused_block(16, 7)
    x = torch.randn(2, 16, 6, 6)
    before = x.clone()
    with torch.no_grad():
        torch.testing.assert_close(fused(x), block(x), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(x, before, atol=0, rtol=0)


@needs_onednn
def test_packed_weights_follow_weight_updates():
    # The oneDNN path caches packed weights; a new state dict must not leave stale copies in use.
    block, fused = _fused_block(16, 7)
    x = torch.randn(2, 16, 8, 8).contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        fused(x)
        state = {k: v + 0.1 * torch.randn_like(v) for k, v in block.state_dict().items()}
        block.load_state_dict(state)  # shares its parameters with `fused`
        torch.testing.assert_close(fused(x), block(x), atol=1e-5, rtol=1e-5)


def _bf16_reference_and_fast(**options) -> tuple[torch.Tensor, torch.nn.Module, torch.Tensor]:
    """The fp32 plain model's logits, the bf16 fast model and its logits on the same input."""
    model = _randomise_norms(unireplknet.create_model("unireplknet_a", num_classes=7, **TINY))
    fast = optimize_for_inference(model, **options).to(torch.bfloat16)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        expected = model(x)
        actual = fast(x.to(torch.bfloat16).contiguous(memory_format=torch.channels_last))
    assert actual.dtype == torch.bfloat16
    return expected, fast, actual


def _ran_onednn(fast: torch.nn.Module) -> bool:
    fused = [m for m in fast.modules() if isinstance(m, FusedInferenceBlock)]
    ran = {m.fc1.weight in fast_module._PACKED for m in fused}
    assert len(ran) == 1, "every block takes the same path"
    return ran.pop()


@pytest.mark.parametrize("force", ["env", "argument"])
def test_bf16_fallback_matches_reference(monkeypatch, force):
    # The path AVX2-only CPUs take; forced here so that it is tested on every machine.
    if force == "env":
        monkeypatch.setenv("UNIREPLKNET_FFN", "torch")
        expected, fast, actual = _bf16_reference_and_fast()
    else:
        monkeypatch.setenv("UNIREPLKNET_FFN", "onednn")  # the argument wins over the environment
        expected, fast, actual = _bf16_reference_and_fast(ffn_backend="torch")
    assert not _ran_onednn(fast)
    torch.testing.assert_close(actual.float(), expected, atol=0.1, rtol=0.05)


def test_fused_model_runs_in_bfloat16_on_any_cpu(monkeypatch):
    monkeypatch.delenv("UNIREPLKNET_FFN", raising=False)
    expected, fast, actual = _bf16_reference_and_fast()
    assert _ran_onednn(fast) == fast_module.onednn_linear_supported(torch.bfloat16)
    torch.testing.assert_close(actual.float(), expected, atol=0.1, rtol=0.05)


@pytest.mark.skipif(
    not fast_module.onednn_linear_supported(torch.bfloat16),
    reason="this CPU has no oneDNN bf16 linear (needs AVX-512 BW/VL/DQ or AVX-NE-CONVERT); the fallback is tested above",
)
def test_bf16_onednn_path_matches_fallback_and_reference():
    expected, fast, onednn = _bf16_reference_and_fast(ffn_backend="onednn")
    assert _ran_onednn(fast)
    _, plain_fast, plain = _bf16_reference_and_fast(ffn_backend="torch")
    assert not _ran_onednn(plain_fast)
    torch.testing.assert_close(onednn.float(), expected, atol=0.1, rtol=0.05)
    torch.testing.assert_close(onednn.float(), plain.float(), atol=0.1, rtol=0.05)


@needs_onednn
@pytest.mark.parametrize("supported", [True, False])
def test_auto_chooses_the_path_by_capability(monkeypatch, supported):
    # fp32 oneDNN runs on every x86 CPU, so both answers of the capability check can be exercised here.
    monkeypatch.delenv("UNIREPLKNET_FFN", raising=False)
    monkeypatch.setattr(fast_module, "onednn_linear_supported", lambda dtype: supported)
    block, fused = _fused_block(16, 7)
    x = torch.randn(2, 16, 6, 6).contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        torch.testing.assert_close(fused(x), block(x), atol=1e-5, rtol=1e-5)
    assert (fused.fc1.weight in fast_module._PACKED) == supported


def test_forcing_onednn_where_the_cpu_lacks_it_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(fast_module, "onednn_linear_supported", lambda dtype: False)
    block, _ = _fused_block(8, 5)
    fused = FusedInferenceBlock(block, ffn_backend="onednn").requires_grad_(False)
    with torch.no_grad(), pytest.raises(RuntimeError, match="UNIREPLKNET_FFN=onednn.*'auto'"):
        fused(torch.randn(1, 8, 4, 4))


def test_unknown_ffn_backend_is_a_clear_error(monkeypatch):
    model = unireplknet.create_model("unireplknet_a", num_classes=7, **TINY)
    with pytest.raises(ValueError, match="choose one of auto, onednn, torch"):
        optimize_for_inference(model, ffn_backend="mkl")
    monkeypatch.setenv("UNIREPLKNET_FFN", "fast")
    with pytest.raises(ValueError, match="'fast'"):
        fast_module.get_ffn_backend()


def _cpu_flags() -> set[str] | None:
    try:
        cpuinfo = Path("/proc/cpuinfo").read_text()
    except OSError:
        return None
    flags = [line.split(":", 1)[1].split() for line in cpuinfo.splitlines() if line.startswith("flags")]
    return set(flags[0]) if flags else None


@pytest.mark.skipif(_cpu_flags() is None, reason="needs an x86 Linux /proc/cpuinfo to compare with")
@needs_onednn
def test_bf16_capability_matches_the_cpu_flags():
    flags = _cpu_flags()
    has_isa = {"avx512bw", "avx512vl", "avx512dq"} <= flags or "avx_ne_convert" in flags
    assert fast_module.onednn_linear_supported(torch.bfloat16) == has_isa
    assert fast_module.onednn_linear_supported(torch.float32)
    assert not fast_module.onednn_linear_supported(torch.float64)


def test_fused_block_needs_reparameterized_block():
    with pytest.raises(ValueError, match="reparameterize"):
        FusedInferenceBlock(UniRepLKNetBlock(8, 7))
