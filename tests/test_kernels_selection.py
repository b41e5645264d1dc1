"""Run-time algorithm selection, on the CPU with a fake timer (on CUDA the timer is CUDA events)."""

from __future__ import annotations

import json
import os

os.environ["TRITON_INTERPRET"] = "1"  # before the kernels are first imported (lazily, on first use)

import pytest
import torch
import torch.nn.functional as F

from unireplknet.kernels import AlgorithmSelector, backend, depthwise_conv2d, dwconv, get_selector, set_selector


class ScriptedTimer:
    """Runs each candidate once (so a broken one fails here) and reports scripted milliseconds in call order."""

    def __init__(self, *times: float):
        self.times = list(times)
        self.calls = 0

    def __call__(self, fn) -> float:
        fn()
        self.calls += 1
        return self.times.pop(0)


def _ran(log: list[str], name: str):
    def fn():
        log.append(name)

    return fn


def test_selector_keeps_the_fastest_and_caches_it():
    timer = ScriptedTimer(3.0, 1.0, 2.0)
    selector = AlgorithmSelector(timer=timer, cache_path="")
    log: list[str] = []
    candidates = {name: _ran(log, name) for name in ("a", "b", "c")}
    assert selector.choose("key", candidates, timed=True) == "b"
    assert log == ["a", "b", "c"] and selector.timings["key"] == {"a": 3.0, "b": 1.0, "c": 2.0}
    assert selector.choose("key", candidates, timed=True) == "b"  # cached: no second timing
    assert timer.calls == 3


def test_selector_without_timing_or_in_deterministic_mode_takes_the_first_candidate():
    timer = ScriptedTimer()
    selector = AlgorithmSelector(timer=timer, cache_path="")
    candidates = {"a": lambda: None, "b": lambda: None}
    assert selector.choose("key", candidates, timed=False) == "a"
    torch.use_deterministic_algorithms(True)
    try:
        assert selector.choose("key", candidates, timed=True) == "a"
    finally:
        torch.use_deterministic_algorithms(False)
    assert timer.calls == 0 and not selector.choices


def test_selector_skips_a_failing_candidate_and_fails_clearly_when_none_runs():
    def broken():
        raise RuntimeError("out of resources")

    selector = AlgorithmSelector(timer=ScriptedTimer(5.0), cache_path="")
    assert selector.choose("key", {"fast_but_broken": broken, "slow": lambda: None}, timed=True) == "slow"
    with pytest.raises(RuntimeError, match="no depthwise-conv algorithm ran for other: tried x, y"):
        selector.choose("other", {"x": broken, "y": broken}, timed=True)


def test_selector_disk_cache_survives_a_new_process(tmp_path, monkeypatch):
    path = tmp_path / "choices.json"
    monkeypatch.setenv("UNIREPLKNET_DWCONV_CACHE", str(path))
    first = AlgorithmSelector(timer=ScriptedTimer(2.0, 1.0))
    assert first.choose("key", {"a": lambda: None, "b": lambda: None}, timed=True) == "b"
    assert json.loads(path.read_text()) == {"key": "b"}
    second = AlgorithmSelector(timer=ScriptedTimer())  # nothing scripted: any timing would fail
    assert second.choose("key", {"a": lambda: None, "b": lambda: None}, timed=True) == "b"
    assert list(tmp_path.iterdir()) == [path]  # the atomic write left no temporary file


def test_unreadable_disk_cache_is_a_clear_error(tmp_path):
    path = tmp_path / "choices.json"
    path.write_text("{not json")
    with pytest.raises(ValueError, match="algorithm cache .* is unreadable.*delete it"):
        AlgorithmSelector(cache_path=str(path))


@pytest.fixture
def timed_cpu(monkeypatch):
    """Route CPU tensors through the selection as if they were on a GPU (the kernels run interpreted)."""
    monkeypatch.setattr(dwconv, "_accelerated", lambda x: True)
    previous = get_selector()
    yield
    set_selector(previous)


def _conv_inputs():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(1, 4, 6, 7, generator=gen).to(torch.bfloat16).contiguous(memory_format=torch.channels_last)
    weight = (torch.randn(4, 1, 7, 7, generator=gen) / 7).to(torch.bfloat16)
    return x.requires_grad_(), weight.requires_grad_()


def test_auto_times_cudnn_and_both_triton_algorithms_per_direction(timed_cpu):
    # Candidates in preference order: triton_mma, triton_direct, torch. Scripted: direct wins forward,
    # torch the input gradient, mma the weight gradient.
    selector = AlgorithmSelector(timer=ScriptedTimer(3.0, 1.0, 2.0, 3.0, 2.0, 1.0, 1.0, 2.0, 3.0), cache_path="")
    set_selector(selector)
    x, weight = _conv_inputs()
    y = depthwise_conv2d(x, weight, backend="auto")
    y.backward(torch.ones_like(y))
    chosen = {key.split("|")[0]: name for key, name in selector.choices.items()}
    assert chosen == {"forward": "triton_direct", "input_grad": "torch", "weight_grad": "triton_mma"}
    assert all(list(t) == ["triton_mma", "triton_direct", "torch"] for t in selector.timings.values())
    key = next(iter(selector.choices))
    assert key == "forward|1x4x6x7|k7|d1|bfloat16|channels_last|cpu"
    xr, wr = x.detach().double().requires_grad_(), weight.detach().double().requires_grad_()
    ref = F.conv2d(xr, wr, padding=3, groups=4)
    ref.backward(torch.ones_like(ref))
    torch.testing.assert_close(y.double(), ref, atol=2e-2, rtol=2e-2)
    torch.testing.assert_close(x.grad.double(), xr.grad, atol=5e-2, rtol=2e-2)
    torch.testing.assert_close(weight.grad.double(), wr.grad, atol=5e-2, rtol=2e-2)


def test_forced_backends_still_force(timed_cpu, monkeypatch):
    selector = AlgorithmSelector(timer=ScriptedTimer(2.0, 1.0), cache_path="")
    set_selector(selector)
    x, weight = _conv_inputs()
    monkeypatch.setenv("UNIREPLKNET_DWCONV", "torch")
    depthwise_conv2d(x, weight)
    assert not selector.choices  # torch forced: no selection at all
    monkeypatch.setenv("UNIREPLKNET_DWCONV", "triton")
    depthwise_conv2d(x.detach(), weight.detach())
    (times,) = selector.timings.values()
    assert list(times) == ["triton_mma", "triton_direct"]  # triton forced: cuDNN is not a candidate
    assert list(selector.choices.values()) == ["triton_direct"]
    with backend("triton_mma"):
        depthwise_conv2d(x.detach(), weight.detach())  # one algorithm forced: nothing left to time
    assert len(selector.timings) == 1


def test_forcing_an_algorithm_for_a_dtype_it_does_not_take_is_a_clear_error():
    with pytest.raises(ValueError, match="triton_mma depthwise conv takes bfloat16, float16, not torch.float32"):
        depthwise_conv2d(torch.randn(1, 2, 8, 8), torch.randn(2, 1, 7, 7), backend="triton_mma")
