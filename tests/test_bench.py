"""`unireplknet bench`: a tiny model beside a tiny timm ConvNeXt, one timed step each, on the CPU."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.usefixtures("one_thread")

TINY = ("unireplknet_a", "--baseline", "convnext_atto", "--batch", "2", "--size", "32", "--dtype", "fp32")


def test_bench_measures_both_models_in_one_run(cli):
    result = cli.json("bench", *TINY, "--steps", "1", "--warmup", "0", "--device", "cpu")
    assert result["device"] == "cpu" and result["settings"]["batch"] == 2
    assert [row["model"] for row in result["models"]] == ["unireplknet_a", "convnext_atto"]
    for row in result["models"]:
        assert row["inference_img_per_s"] > 0 and row["train_img_per_s"] > 0
    ours, base = result["models"]
    expected = round(ours["inference_img_per_s"] / base["inference_img_per_s"], 3)
    assert result["speed_vs_baseline"]["inference"] == pytest.approx(expected, rel=1e-2)
    assert result["algorithms"] == {}  # selection runs on CUDA only


def test_bench_table_names_the_models_and_the_ratio(cli):
    out = cli("bench", *TINY, "--steps", "1", "--warmup", "0", "--device", "cpu", "--contiguous").output
    assert "unireplknet_a" in out and "convnext_atto" in out and "ratio to baseline" in out
    assert "run-time algorithm selection runs on CUDA" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("no_such_model",), "unknown model 'no_such_model'"),
        (("unireplknet_a", "--dtype", "int8"), "unknown dtype 'int8'"),
        (("unireplknet_a", "--steps", "0"), "steps must be >= 1"),
    ],
)
def test_bench_bad_input_is_one_line_exit_2(cli, args, message):
    result = cli("bench", *args, "--device", "cpu", exit_code=2)
    assert message in result.output and len(result.output.strip().splitlines()) == 1
