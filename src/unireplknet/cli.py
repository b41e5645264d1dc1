"""The ``unireplknet`` command line: train, eval, predict, reparam, info, export, bench, configs.

Tasks are looked up by name (``--task NAME``) through :func:`unireplknet.tasks.get_task`, so every
registered task works here unchanged; task options go through the config (``--config FILE`` and
``--set section.key=value``). Every failure (bad input, an OS error such as a full disk, a failed
export) ends with a one-line ``error: ...`` and exit code 2; ``unireplknet --debug COMMAND`` (or
``UNIREPLKNET_DEBUG=1``) shows the traceback instead.
"""

from __future__ import annotations

import copy
import json
import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from . import list_models
from .files import check_output_path, to_json
from .tasks import BUILTIN_TASKS

__all__ = ["app", "main"]

# The repository's configs/ folder (the package is installed editable from the repository).
CONFIGS_DIR = Path(__file__).resolve().parents[2] / "configs"
TRAIN_EPILOG = (
    f"Variants (--set model.name=...): {', '.join(list_models())}. "
    "Mixed precision (--set train.amp=...): null, bf16, fp16. "
    "Bundled demo configs and dataset recipes, one line each on what they run: unireplknet configs."
)

app = typer.Typer(
    name="unireplknet",
    help="Train, evaluate, predict with, re-parameterize and export UniRepLKNet models.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

ConfigOpt = Annotated[
    Path | None,
    typer.Option("--config", "-c", help="YAML config file (sections task, model, data, aug, optim, train, output)."),
]
SetOpt = Annotated[
    list[str] | None,
    typer.Option("--set", "-s", help="Config override section.key=value (repeatable), e.g. optim.lr=0.002."),
]
TaskOpt = Annotated[
    str | None,
    typer.Option(
        "--task",
        "-t",
        help=f"Task: {', '.join(BUILTIN_TASKS)} (default: from the config or checkpoint, else classify).",
    ),
]
DataOpt = Annotated[Path | None, typer.Option("--data", "-d", help="The dataset's folder (sets data.root).")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


class UsageError(ValueError):
    """Bad command-line input (reported as a one-line error, exit code 2)."""


DEBUG_ENV = "UNIREPLKNET_DEBUG"


def _debug() -> bool:
    return os.environ.get(DEBUG_ENV, "") not in ("", "0")


def _error_line(error: BaseException) -> str:
    """The one line that describes ``error`` (expected errors as they are, others with their type)."""
    from .files import describe_os_error

    if isinstance(error, OSError) and error.errno is not None:
        return describe_os_error(error)
    lines = [line.strip() for line in str(error).strip().splitlines() if line.strip()]
    if lines and lines[0].startswith("Caught ") and "DataLoader worker" in lines[0]:
        lines = lines[-1:]  # the worker's own message is the last line of its traceback
    if isinstance(error, (ValueError, OSError)):
        return "; ".join(lines) or type(error).__name__
    # Not an error this package raises on purpose: name its type, keep the first line, point to --debug.
    return f"{type(error).__name__}: {lines[0] if lines else ''} (unexpected; `unireplknet --debug ...` shows where)"


def _fail(error: BaseException) -> typer.Exit:
    typer.echo(f"error: {_error_line(error)}", err=True)
    return typer.Exit(code=2)


def _guard(fn: Any) -> Any:
    """Turn any failure into ``error: ...`` (one line) and exit code 2; with ``--debug`` let it raise."""
    import functools

    import click

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except (typer.Exit, click.exceptions.Exit, click.ClickException, click.exceptions.Abort):
            raise
        except KeyboardInterrupt:
            if _debug():
                raise
            typer.echo("error: interrupted (a run continues from its last saved state with --resume)", err=True)
            raise typer.Exit(code=130) from None
        except Exception as e:
            if _debug():
                raise
            raise _fail(e) from None

    return wrapper


@app.callback()
def _options(
    debug: Annotated[
        bool, typer.Option("--debug", help="Show the full traceback of a failure instead of one line.")
    ] = False,
) -> None:
    if debug:
        os.environ[DEBUG_ENV] = "1"


# -- config assembly -------------------------------------------------------------------------------
def _overrides(sets: list[str] | None, options: dict[str, Any] | None = None) -> dict[str, Any]:
    """``--set`` items, then dedicated options (``{"data.root": value}``; None means not given)."""
    from .config import merge, parse_overrides

    layer = parse_overrides(sets or [])
    for dotted, value in (options or {}).items():
        if value is not None:
            section, key = dotted.split(".")
            layer = merge(layer, {section: {key: value}})
    return layer


def _resolve(
    config: Path | None, task: str | None, overrides: dict[str, Any], stored: dict[str, Any] | None = None
) -> dict[str, Any]:
    from .config import load_yaml, resolve_config
    from .tasks import get_task

    user = load_yaml(config) if config is not None else {}
    name = task or overrides.get("task") or user.get("task") or (stored or {}).get("task") or "classify"
    user = {**user, "task": name}
    return resolve_config(get_task(name).config_schema, user, overrides, stored=stored)


def _load_model(
    checkpoint: Path, config: Path | None, task: str | None, overrides: dict[str, Any], need_data: bool
) -> tuple[Any, Any, Any]:
    """(task, model with the checkpoint's weights in the file's structure, eval dataset or None)."""
    from .checkpoint import load_checkpoint
    from .engine import build_task
    from .engine.state import read_weights

    weights, info = read_weights(checkpoint)
    cfg = _resolve(config, task, overrides, stored=info.get("config"))
    task_obj = build_task(cfg)
    if info.get("task_state"):
        task_obj.load_state_dict(info["task_state"])
    if not info.get("task_state"):  # a file from elsewhere: the data tells the class list and input statistics
        dataset = task_obj.build_datasets()[1]
    else:
        dataset = task_obj.build_eval_dataset() if need_data else None
    model = task_obj.build_model()
    load_checkpoint(model, weights, structure="file")
    return task_obj, model.eval(), dataset


def _print_table(title: str, rows: dict[str, Any]) -> None:
    from rich.console import Console

    from .engine.progress import print_table, summary_table

    print_table(summary_table(title, rows), Console())


# -- commands --------------------------------------------------------------------------------------
@app.command(epilog=TRAIN_EPILOG)
@_guard
def train(
    config: ConfigOpt = None,
    task: TaskOpt = None,
    sets: SetOpt = None,
    data: DataOpt = None,
    full: Annotated[
        bool, typer.Option("--full", help="Train on the whole training set (data.train_subset=null).")
    ] = False,
    epochs: Annotated[int | None, typer.Option("--epochs", "-e", help="Number of epochs (train.epochs).")] = None,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Folder for run folders (output.dir).")] = None,
    name: Annotated[str | None, typer.Option("--name", help="Run folder name (output.name).")] = None,
    device: Annotated[str | None, typer.Option("--device", help="auto, cpu, cuda or cuda:N (train.device).")] = None,
    resume: Annotated[
        Path | None, typer.Option("--resume", "-r", help="Continue the run in this folder exactly where it stopped.")
    ] = None,
    check_data: Annotated[
        bool, typer.Option("--check-data", help="First decode every sample (as `check-data` does); stop if any is bad.")
    ] = False,
) -> None:
    """Train a model (default: UniRepLKNet-A on the bundled Fashion-MNIST), evaluate it, re-parameterize it
    and check the deployed model gives the same outputs. Launch with torchrun for several processes."""
    from .engine import train as run_training

    if resume is not None:
        if any(v not in (None, False, []) for v in (config, task, sets, data, full, epochs, output, name, check_data)):
            raise UsageError("--resume continues a run with its own saved config; drop the other options")
        from .config import load_yaml

        stored = load_yaml(resume / "config.yaml") if (resume / "config.yaml").is_file() else None
        if stored is None:
            raise UsageError(f"{resume} is not a run folder (no config.yaml); pass the folder `train` created")
        cfg = _resolve(None, None, {} if device is None else {"train": {"device": device}}, stored=stored)
        run_training(cfg, resume, resume=True)
        return
    overrides = _overrides(
        sets,
        {
            "data.root": str(data) if data is not None else None,
            "train.epochs": epochs,
            "output.dir": str(output) if output is not None else None,
            "output.name": name,
            "train.device": device,
        },
    )
    cfg = _resolve(config, task, overrides)
    if full:
        if "train_subset" not in cfg["data"]:
            raise UsageError(f"--full: task {cfg['task']!r} has no data.train_subset option")
        cfg["data"]["train_subset"] = None
    if check_data:
        from .engine.check import check_task_data

        check_task_data(cfg)
    run_training(cfg)


@app.command("check-data")
@_guard
def check_data_cmd(
    config: ConfigOpt = None,
    task: TaskOpt = None,
    sets: SetOpt = None,
    data: DataOpt = None,
    workers: Annotated[
        int | None, typer.Option("--workers", "-w", help="Decoding processes (default: data.num_workers).")
    ] = None,
) -> None:
    """Decode every sample of the task's training, validation and test data (progress bar) and list the
    files that cannot be read or hold NaN/inf values; exit code 2 if there are any."""
    if workers is not None and workers < 0:
        raise UsageError(f"--workers must be >= 0, got {workers}")
    cfg = _resolve(config, task, _overrides(sets, {"data.root": str(data) if data is not None else None}))
    from .engine.check import check_task_data

    check_task_data(cfg, workers)


@app.command("eval")
@_guard
def evaluate_cmd(
    checkpoint: Annotated[
        Path, typer.Argument(help="Weights file (a run's last/best/deploy.safetensors, or any supported checkpoint).")
    ],
    config: ConfigOpt = None,
    task: TaskOpt = None,
    sets: SetOpt = None,
    data: DataOpt = None,
    batch_size: Annotated[int | None, typer.Option("--batch-size", "-b", help="Evaluation batch size.")] = None,
    device: Annotated[str, typer.Option("--device", help="auto, cpu, cuda or cuda:N.")] = "auto",
    as_json: JsonOpt = False,
) -> None:
    """Evaluate a checkpoint (training or deploy structure) on the task's evaluation split: top-1, top-5, loss."""
    import time

    from .engine.data import eval_loader
    from .engine.distributed import DistInfo, pick_device
    from .engine.evaluate import evaluate

    overrides = _overrides(
        sets, {"data.root": str(data) if data is not None else None, "data.eval_batch_size": batch_size}
    )
    task_obj, model, dataset = _load_model(checkpoint, config, task, overrides, need_data=True)
    target = pick_device(device)
    model.to(target)
    cfg = task_obj.cfg
    loader = eval_loader(
        dataset,
        DistInfo(),
        batch_size=cfg["data"]["eval_batch_size"],
        num_workers=cfg["data"]["num_workers"],
        collate_fn=task_obj.collate_fn(False),
        pin_memory=target.type == "cuda",
    )
    started = time.perf_counter()
    (metrics,), _ = evaluate([model], loader, task_obj.new_metrics, task_obj.loss, target)
    result = {"checkpoint": str(checkpoint), "samples": len(dataset), **metrics.compute()}
    result["seconds"] = round(time.perf_counter() - started, 2)
    if as_json:
        typer.echo(to_json(result))
    else:
        _print_table(f"evaluation ({task_obj.name})", result)


def _expand_inputs(inputs: list[Path]) -> list[Path]:
    from .data.folders import IMAGE_EXTENSIONS

    files: list[Path] = []
    for item in inputs:
        if item.is_dir():
            found = sorted(p for p in item.rglob("*") if p.is_file() and not p.name.startswith("."))
            found = [p for p in found if p.suffix.lower() in IMAGE_EXTENSIONS] or found
            if not found:
                raise UsageError(f"folder {item} holds no input files")
            files.extend(found)
        elif item.is_file():
            files.append(item)
        else:
            raise FileNotFoundError(f"input not found: {item}")
    return files


@app.command()
@_guard
def predict(
    checkpoint: Annotated[
        Path, typer.Argument(help="Weights file written by `unireplknet train` (or with --set for others).")
    ],
    inputs: Annotated[list[Path], typer.Argument(help="Input files and/or folders (searched recursively).")],
    top_k: Annotated[int, typer.Option("--top-k", "-k", help="Classes to show per input.")] = 5,
    config: ConfigOpt = None,
    task: TaskOpt = None,
    sets: SetOpt = None,
    as_json: JsonOpt = False,
    save_input: Annotated[
        Path | None,
        typer.Option(
            "--save-input",
            help="Folder for PNGs of what the network sees (video: tiled frames; points: the three views).",
        ),
    ] = None,
) -> None:
    """Predict the top classes (with probabilities) of input files, e.g. images."""
    if top_k < 1:
        raise UsageError(f"--top-k must be >= 1, got {top_k}")
    if save_input is not None:
        sets = [*(sets or []), f"predict.save_input={save_input}"]
    files = _expand_inputs(inputs)
    from .engine.predict import predict as predict_files

    task_obj, model, _ = _load_model(checkpoint, config, task, _overrides(sets), need_data=False)
    results = predict_files(task_obj, model, files, top_k=top_k)
    if as_json:
        typer.echo(to_json(results, indent=2))
        return
    for result in results:
        top = result.get("top")
        if top is None:
            typer.echo(to_json(result))
            continue
        typer.echo(result["path"])
        for entry in top:
            typer.echo(f"  {entry['probability']:8.2%}  {entry['class']}")


@app.command()
@_guard
def reparam(
    source: Annotated[Path, typer.Argument(help="Checkpoint in the training structure.")],
    target: Annotated[Path, typer.Argument(help="Output .safetensors file (deploy structure).")],
    model_name: Annotated[
        str | None, typer.Option("--model", "-m", help="Variant, for checkpoints not written by `unireplknet train`.")
    ] = None,
    size: Annotated[
        int | None, typer.Option("--size", help="Side of the random check input (default: the run's, else 224).")
    ] = None,
    tolerance: Annotated[float, typer.Option("--tolerance", help="Largest accepted output difference.")] = 1e-4,
    sets: SetOpt = None,
) -> None:
    """Re-parameterize a checkpoint into the inference structure and verify both give the same outputs."""
    import torch

    from .engine.evaluate import max_abs_diff
    from .engine.state import read_weights, save_weights
    from .reparam import reparameterize

    if target.suffix != ".safetensors":
        raise UsageError(f"output must be a .safetensors file, got {target}")
    check_output_path(target)
    weights, info = read_weights(source)
    if info.get("config"):
        if model_name is not None:
            sets = [*(sets or []), f"model.name={model_name}"]
        task_obj, model, _ = _load_model(source, None, None, _overrides(sets), need_data=False)
        cfg, task_state = task_obj.cfg, task_obj.state_dict()
        in_chans = task_state.get("in_chans", getattr(model, "in_chans", 3))
        size = size or task_state.get("img_size") or 224
    else:
        from .checkpoint import load_checkpoint
        from .model import create_model

        if model_name is None:
            raise UsageError(f"{source} holds no run config; name its variant with --model, e.g. --model unireplknet_a")
        fc, stem = weights.get("head.fc.weight"), weights.get("stem.conv1.weight")
        in_chans = int(stem.shape[1]) if stem is not None else 3
        model = create_model(model_name, num_classes=int(fc.shape[0]) if fc is not None else 0, in_chans=in_chans)
        load_checkpoint(model, weights, structure="file")
        model.eval()
        cfg, task_state, size = {"model": {"name": model_name}}, {}, size or 224
    deployed = reparameterize(copy.deepcopy(model))
    if set(deployed.state_dict()) == set(model.state_dict()):
        raise UsageError(f"{source} is already in the deploy (re-parameterized) structure")
    x = torch.randn(2, in_chans, size, size, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        diff = max_abs_diff(model(x), deployed(x))
    typer.echo(f"max |train - deploy| on random input {tuple(x.shape)}: {diff:.3g}")
    if diff > tolerance:
        typer.echo(f"error: difference {diff:.3g} exceeds the tolerance {tolerance:g}; nothing written", err=True)
        raise typer.Exit(code=1)
    save_weights(target, deployed.state_dict(), {"config": cfg, "task_state": task_state, "structure": "deploy"})
    typer.echo(f"wrote {target}")


@app.command()
@_guard
def info(
    name: Annotated[str, typer.Argument(help=f"Variant: {', '.join(list_models())}.")],
    size: Annotated[int, typer.Option("--size", help="Input side length.")] = 224,
    in_chans: Annotated[int, typer.Option("--in-chans", help="Input channels.")] = 3,
    num_classes: Annotated[int, typer.Option("--num-classes", help="Classifier outputs.")] = 1000,
    as_json: JsonOpt = False,
) -> None:
    """Parameters (training and deploy structure) and FLOPs (multiply-accumulates) of a variant."""
    from .flops import model_info

    result = model_info(name, size=size, in_chans=in_chans, num_classes=num_classes)
    if as_json:
        typer.echo(json.dumps(result))
        return
    rows = {
        "input": f"{result['batch']} x {in_chans} x {size} x {size}",
        "params (train structure)": f"{result['params_train'] / 1e6:.2f} M",
        "params (deploy structure)": f"{result['params_deploy'] / 1e6:.2f} M",
        "FLOPs (deploy, multiply-adds)": f"{result['macs_deploy'] / 1e9:.3f} G",
        "FLOPs (train structure, multiply-adds)": f"{result['macs_train'] / 1e9:.3f} G",
    }
    _print_table(name, rows)


@app.command()
@_guard
def export(
    checkpoint: Annotated[
        Path, typer.Argument(help="Weights file (re-parameterized first if in the training structure).")
    ],
    target: Annotated[Path, typer.Argument(help="Output file (.onnx or .pt).")],
    fmt: Annotated[
        str | None, typer.Option("--format", "-f", help="onnx or torchscript (default: from the file suffix).")
    ] = None,
    size: Annotated[
        int | None, typer.Option("--size", help="Input side length (default: the run's, else 224).")
    ] = None,
    sets: SetOpt = None,
) -> None:
    """Export a checkpoint to ONNX or TorchScript (deploy structure)."""
    check_output_path(target)
    fmt = fmt or {".onnx": "onnx", ".pt": "torchscript", ".ts": "torchscript"}.get(target.suffix)
    if fmt not in ("onnx", "torchscript"):
        raise UsageError(
            f"cannot tell the export format from {target.name}; pass --format onnx or --format torchscript"
        )
    try:
        from . import export as exporter
    except ImportError as e:
        raise UsageError(
            f"export needs its optional packages ({e.name}); install them with: pip install 'unireplknet[export]'"
        ) from None
    task_obj, model, _ = _load_model(checkpoint, None, None, _overrides(sets), need_data=False)
    task_state = task_obj.state_dict()
    in_chans = task_state.get("in_chans", getattr(model, "in_chans", 3))
    size = size or task_state.get("img_size") or 224
    function = exporter.export_onnx if fmt == "onnx" else exporter.export_torchscript
    target.parent.mkdir(parents=True, exist_ok=True)
    function(model, target, input_size=(in_chans, size, size))
    typer.echo(f"wrote {target}")


@app.command()
@_guard
def bench(
    model: Annotated[
        str, typer.Argument(help="Variant (unireplknet_t, ...) or any timm model name.")
    ] = "unireplknet_t",
    baseline: Annotated[str, typer.Option("--baseline", help="Model measured beside it, same run.")] = "convnext_tiny",
    batch: Annotated[int, typer.Option("--batch", "-b", help="Batch size.")] = 128,
    size: Annotated[int, typer.Option("--size", help="Input side length.")] = 224,
    dtype: Annotated[str, typer.Option("--dtype", help="fp32, bf16 or fp16 (autocast).")] = "bf16",
    channels_last: Annotated[
        bool, typer.Option("--channels-last/--contiguous", help="Memory format of model and input.")
    ] = True,
    compile: Annotated[bool, typer.Option("--compile", help="Wrap both models in torch.compile.")] = False,
    steps: Annotated[int, typer.Option("--steps", help="Timed iterations per measurement.")] = 10,
    warmup: Annotated[int, typer.Option("--warmup", help="Untimed iterations first.")] = 3,
    device: Annotated[str, typer.Option("--device", help="auto, cpu, cuda or cuda:N.")] = "auto",
    as_json: JsonOpt = False,
) -> None:
    """Inference and training-step throughput of a model beside timm's ConvNeXt-T, measured here."""
    from .bench import run_bench

    result = run_bench(
        model,
        baseline=baseline,
        batch=batch,
        size=size,
        dtype=dtype,
        channels_last=channels_last,
        compile=compile,
        steps=steps,
        warmup=warmup,
        device=device,
        progress=not as_json and sys.stderr.isatty(),
    )
    if as_json:
        typer.echo(json.dumps(result))
        return
    s = result["settings"]
    title = (
        f"{result['device']}, batch {s['batch']}, {s['size']}x{s['size']}, {s['dtype']}, "
        f"{'channels_last' if s['channels_last'] else 'contiguous'}{', compiled' if s['compile'] else ''}"
    )
    rows = {}
    for row in result["models"]:
        memory = f", peak {row['peak_memory_gib']} GiB" if "peak_memory_gib" in row else ""
        rows[row["model"]] = (
            f"inference {row['inference_img_per_s']:.1f} img/s, training step {row['train_img_per_s']:.1f} img/s{memory}"
        )
    ratio = result["speed_vs_baseline"]
    rows["ratio to baseline"] = f"inference {ratio['inference']:.2f}x, training step {ratio['train']:.2f}x"
    _print_table(title, rows)
    if result["algorithms"]:
        _print_table("depthwise-conv algorithm per call signature", result["algorithms"])
    else:
        typer.echo("depthwise convs: PyTorch on this device (run-time algorithm selection runs on CUDA)")


def config_entries(folder: Path) -> list[dict[str, str]]:
    """``name``, ``task``, ``model`` and ``description`` (the first line, a comment) of each YAML in ``folder``."""
    from .config import load_yaml

    if not folder.is_dir():
        raise FileNotFoundError(f"no configs folder at {folder}; pass the folder that holds the YAML configs")
    entries = []
    for path in sorted(folder.glob("*.yaml")):
        cfg = load_yaml(path)
        first = path.read_text().split("\n", 1)[0]
        entries.append(
            {
                "name": path.stem,
                "task": str(cfg.get("task", "classify")),
                "model": str((cfg.get("model") or {}).get("name", "")),
                "description": first.lstrip("#").strip() if first.startswith("#") else "(no description line)",
                "path": str(path),
            }
        )
    if not entries:
        raise FileNotFoundError(f"{folder} holds no .yaml configs")
    return entries


@app.command("configs")
@_guard
def configs_cmd(
    folder: Annotated[
        Path | None, typer.Argument(help="Folder of YAML configs (default: the repository's configs/).")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """List the bundled configs (demos on bundled data, recipes for real datasets), one line each: name,
    task, variant and what it runs (the file's first comment line)."""
    folder = folder or CONFIGS_DIR
    entries = config_entries(folder)
    if as_json:
        typer.echo(json.dumps(entries, indent=2))
        return
    typer.echo(f"configs in {folder}; run one with: unireplknet train --config {folder / 'NAME.yaml'}")
    widths = {key: max(len(e[key]) for e in entries) for key in ("name", "task", "model")}
    for e in entries:
        typer.echo("  ".join(e[key].ljust(widths[key]) for key in widths) + "  " + e["description"])


analyze_app = typer.Typer(help="Analyses of models: the effective receptive field.", no_args_is_help=True)
app.add_typer(analyze_app, name="analyze")


@analyze_app.command("erf")
@_guard
def analyze_erf(
    model_name: Annotated[str, typer.Argument(help="A UniRepLKNet variant or any timm ConvNet, e.g. resnet50.")],
    images: Annotated[
        Path | None, typer.Option("--images", "-i", help="Image folder (default: scikit-image's bundled photos).")
    ] = None,
    checkpoint: Annotated[
        str | None, typer.Option("--checkpoint", help="Weights (file or hf://...); default: random weights.")
    ] = None,
    model_args: Annotated[
        list[str] | None, typer.Option("--model-arg", "-m", help="create_model keyword, e.g. layer_scale_init_value=1.")
    ] = None,
    size: Annotated[int, typer.Option("--size", help="Side the images are resized to.")] = 256,
    num_images: Annotated[int | None, typer.Option("--num-images", "-n", help="Use at most this many images.")] = None,
    output: Annotated[Path, typer.Option("--output", "-o", help="Folder for <model>_erf.png/.json/.npy.")] = Path(
        "erf"
    ),
) -> None:
    """Effective receptive field (RepLKNet / UniRepLKNet method): heatmap PNG and area ratios at 20/30/50/99%."""
    import torch

    from .analysis import erf
    from .config import parse_overrides

    kwargs = parse_overrides([f"model.{item}" for item in model_args or []]).get("model", {})
    model = erf.build_erf_model(model_name, checkpoint, **kwargs)
    source = erf.bundled_images(num_images) if images is None else erf.folder_images(images, num_images)
    with torch.enable_grad():
        scores, used, dropped = erf.erf_of(model, source, size)
    weights = checkpoint or "random" + "".join(f", {item}" for item in model_args or [])
    result = erf.save_erf(
        erf.summarise(model_name, weights, scores, used, dropped), scores, output, f"{model_name}_erf"
    )
    ratios = ", ".join(f"{k}: {v:.4f} (side {result.side[k]} px)" for k, v in result.area_ratio.items())
    typer.echo(f"{model_name} high-contribution area ratio at {ratios}")
    typer.echo(f"wrote {result.files['png']}, {result.files['json']}")


def main() -> None:
    """Console entry point."""
    if "--debug" in sys.argv[2:]:  # accepted after the command too: `unireplknet train --debug`
        sys.argv.remove("--debug")
        sys.argv.insert(1, "--debug")
    # PyTorch's OpenMP threads spin while waiting for work; on a CPU shared with other processes that
    # makes training several times slower. The wait policy is read once at start-up, so the command
    # re-executes itself with a passive policy unless the user chose one.
    # Only the compute-heavy commands pay for the second start-up.
    command = next((arg for arg in sys.argv[1:] if arg != "--debug"), None)
    heavy = command in ("train", "eval", "check-data") and not {"-h", "--help"} & set(sys.argv)
    if heavy and "OMP_WAIT_POLICY" not in os.environ:
        os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
        os.execv(sys.executable, [sys.executable, "-m", "unireplknet", *sys.argv[1:]])
    app(prog_name="unireplknet")
