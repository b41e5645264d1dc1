"""Discoverable command line: ``--help`` names the choices, ``unireplknet configs`` lists the bundled configs."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

import unireplknet
from unireplknet.cli import app
from unireplknet.config import load_yaml
from unireplknet.engine.evaluate import autocast
from unireplknet.tasks import BUILTIN_TASKS, get_task

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
runner = CliRunner()


def _help(*command: str) -> str:
    """``unireplknet COMMAND --help`` as plain words (rich's boxes and line breaks removed)."""
    result = runner.invoke(app, [*command, "--help"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return " ".join(re.sub(r"[│╭╮╰╯─]", " ", result.output).split())


def test_help_names_the_tasks_variants_and_amp_modes() -> None:
    train = _help("train")
    for task in BUILTIN_TASKS:
        get_task(task)  # each task named in the help exists
        assert task in train
    for variant in unireplknet.list_models():
        assert variant in train
        assert variant in _help("info")
    for command in ("eval", "predict"):
        assert all(task in _help(command) for task in BUILTIN_TASKS)
    assert "unireplknet configs" in train
    # The AMP modes named are exactly those the engine accepts.
    listed = re.search(r"train\.amp=\.\.\.\): ([\w, ]+)\.", train).group(1).split(", ")
    assert listed[0] == "null"
    for mode in ("bf16", "fp16", "fp32", "fp8", "tf32", "int8"):
        try:
            autocast(torch.device("cpu"), mode)
            accepted = True
        except ValueError:
            accepted = False
        assert accepted == (mode in listed), mode


def test_configs_lists_every_bundled_config_with_what_it_runs() -> None:
    result = runner.invoke(app, ["configs"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].startswith(f"configs in {CONFIGS}; run one with: unireplknet train --config ")
    files = sorted(CONFIGS.glob("*.yaml"))
    assert len(lines) == 1 + len(files)
    for line, path in zip(lines[1:], files, strict=True):
        name, task, model, description = line.split(maxsplit=3)
        cfg = load_yaml(path)
        assert (name, task, model) == (path.stem, cfg["task"], cfg["model"]["name"])
        assert task in BUILTIN_TASKS
        first = path.read_text().splitlines()[0]
        # Each bundled config opens with its one-line description: what it runs, a demo or a recipe.
        fix = f"{path.name}: open it with one comment line on what it runs, '# Demo: ...' or '# Recipe: ...'"
        assert first == f"# {description}", fix
        assert description.startswith(("Demo: ", "Recipe: ")) and len(first) <= 110, fix
    assert "fashion_mnist" in result.output and "Demo: the default run" in result.output


def test_configs_of_another_folder_and_as_json(tmp_path: Path) -> None:
    (tmp_path / "mine.yaml").write_text("# Demo: my own run.\ntask: audio\nmodel:\n  name: unireplknet_t\n")
    (tmp_path / "bare.yaml").write_text("train:\n  epochs: 1\n")
    result = runner.invoke(app, ["configs", str(tmp_path), "--json"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    entries = json.loads(result.output)
    assert [(e["name"], e["task"], e["model"], e["description"]) for e in entries] == [
        ("bare", "classify", "", "(no description line)"),
        ("mine", "audio", "unireplknet_t", "Demo: my own run."),
    ]


@pytest.mark.parametrize("make", ["missing", "empty"])
def test_configs_of_a_folder_without_configs_is_a_one_line_error(tmp_path: Path, make: str) -> None:
    folder = tmp_path / "nothing" if make == "missing" else tmp_path
    result = runner.invoke(app, ["configs", str(folder)])
    assert result.exit_code == 2
    assert len(result.output.strip().splitlines()) == 1 and result.output.startswith("error: ")
    assert str(folder) in result.output
