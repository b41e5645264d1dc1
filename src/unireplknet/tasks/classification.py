"""What every classification task shares (``classify``, ``audio``, ``video``, ``points``): the loss, top-1/top-5
metrics with a confusion matrix, the top-k output of ``predict`` and the classifier built from the config."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..checkpoint import load_checkpoint
from ..files import atomic_save_figure, atomic_write_text
from .base import ClassListTask, Metrics, model_kwargs

__all__ = [
    "ClassificationTask",
    "ClassificationMetrics",
    "build_classifier",
    "classification_loss",
    "top_classes",
]


class ClassificationMetrics(Metrics):
    """Top-1/top-5 accuracy (percent), mean loss and the confusion matrix.

    Targets may be class indices ``(N,)`` or soft/one-hot ``(N, classes)`` (Mixup): those count as
    their largest entry.
    """

    def __init__(self, num_classes: int, class_names: Sequence[str] | None = None) -> None:
        self.class_names = list(class_names) if class_names else [str(i) for i in range(num_classes)]
        self.confusion = torch.zeros(num_classes, num_classes, dtype=torch.int64)  # [true, predicted]
        self.sums = torch.zeros(3, dtype=torch.float64)  # top-5 hits, loss sum (per sample), samples with loss

    def update(self, outputs: torch.Tensor, targets: torch.Tensor, loss: torch.Tensor | None = None) -> None:
        logits = outputs.detach().float()
        labels = (targets.argmax(-1) if targets.dim() == 2 else targets).cpu()
        top = logits.topk(min(5, logits.shape[-1]), dim=-1).indices.cpu()
        n = self.confusion.shape[0]
        self.confusion += torch.bincount(labels * n + top[:, 0], minlength=n * n).view(n, n)
        self.sums[0] += (top == labels[:, None]).any(-1).sum()
        if loss is not None:
            self.sums[1] += loss.detach().double().cpu() * len(labels)
            self.sums[2] += len(labels)

    def compute(self) -> dict[str, float]:
        count = int(self.confusion.sum())
        if count == 0:
            return {}
        result = {
            "top1": 100.0 * self.confusion.diag().sum().item() / count,
            "top5": 100.0 * self.sums[0].item() / count,
        }
        if self.sums[2] > 0:
            result = {"loss": (self.sums[1] / self.sums[2]).item(), **result}
        return result

    def state_tensors(self) -> list[torch.Tensor]:
        return [self.confusion, self.sums]

    def report(self, run_dir: Path) -> dict[str, Any]:
        """``confusion_matrix.png`` (row-normalised) and ``confusion_matrix.json`` (counts)."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        n = len(self.class_names)
        atomic_write_text(
            run_dir / "confusion_matrix.json",
            json.dumps({"classes": self.class_names, "matrix": self.confusion.tolist()}),
        )
        if n > 50:  # unreadable as a picture; the JSON has it
            return {"confusion_matrix": run_dir / "confusion_matrix.json"}
        rates = self.confusion.double() / self.confusion.sum(1, keepdim=True).clamp(min=1)
        size = max(5.0, 0.5 * n + 2)
        fig, ax = plt.subplots(figsize=(size, size))
        ax.imshow(rates.numpy(), cmap="Blues", vmin=0, vmax=1)
        ax.set_xticks(range(n), self.class_names, rotation=45, ha="right")
        ax.set_yticks(range(n), self.class_names)
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        for i in range(n):
            for j in range(n):
                if self.confusion[i, j]:
                    color = "white" if rates[i, j] > 0.5 else "black"
                    ax.text(j, i, int(self.confusion[i, j]), ha="center", va="center", fontsize=7, color=color)
        top1 = self.compute().get("top1", 0.0)
        ax.set_title(f"confusion matrix (top-1 {top1:.2f}%, {int(self.confusion.sum())} samples)")
        fig.tight_layout()
        path = atomic_save_figure(fig, run_dir / "confusion_matrix.png", dpi=100)
        plt.close(fig)
        return {"confusion_matrix": path}


def classification_loss(outputs: torch.Tensor, targets: torch.Tensor, label_smoothing: float = 0.0) -> torch.Tensor:
    """Cross-entropy of logits ``(B, K)`` for hard labels ``(B,)``, ``(label, sample index)`` rows ``(B, 2)``
    (several views of one sample) or soft targets ``(B, K)`` (Mixup/CutMix, label smoothing already folded in)."""
    outputs = outputs.float()
    if targets.is_floating_point():
        return torch.sum(-targets * F.log_softmax(outputs, dim=-1), dim=-1).mean()
    if targets.dim() == 2:
        targets = targets[:, 0]
    return F.cross_entropy(outputs, targets, label_smoothing=label_smoothing)


def top_classes(probs: torch.Tensor, classes: Sequence[str], k: int) -> list[dict[str, Any]]:
    """The ``k`` most probable classes of a ``(K,)`` probability vector, as JSON-ready dicts."""
    values, indices = probs.topk(min(k, len(classes)))
    return [
        {"class": classes[i], "index": i, "probability": round(p, 6)}
        for p, i in zip(values.tolist(), indices.tolist(), strict=True)
    ]


def build_classifier(cfg: dict[str, Any], num_classes: int, in_chans: int = 3) -> nn.Module:
    """A UniRepLKNet with ``num_classes`` outputs from the ``model`` config section (null entries: the
    variant's own); ``model.checkpoint`` initialises it (fine-tuning: a classifier of another size starts fresh)."""
    from ..model import create_model

    m = cfg["model"]
    model = create_model(m["name"], num_classes=num_classes, in_chans=in_chans, **model_kwargs(m))
    if m.get("checkpoint"):
        load_checkpoint(model, m["checkpoint"], finetune=True, skip=m["checkpoint_skip"])
    return model


class ClassificationTask(ClassListTask):
    """A task that predicts one class per sample: cross-entropy label-smoothed by ``aug.label_smoothing``
    and top-1/top-5 metrics on top of the class-list plumbing."""

    primary_metric = "top1"

    @property
    def label_smoothing(self) -> float:
        """Label smoothing of the training loss (none where the task's ``aug`` section is null)."""
        aug = self.cfg.get("aug")
        return aug["label_smoothing"] if aug else 0.0

    def loss(self, outputs: torch.Tensor, targets: torch.Tensor, train: bool) -> torch.Tensor:
        return classification_loss(outputs, targets, self.label_smoothing if train else 0.0)

    def new_metrics(self) -> Metrics:
        return ClassificationMetrics(self.num_classes, self.classes)

    def train_metrics(self) -> Metrics | None:
        return ClassificationMetrics(self.num_classes, self.classes)

    def predict_output(
        self, path: Path, outputs: torch.Tensor, *, inputs: Any, context: Any, model: nn.Module, top_k: int
    ) -> dict[str, Any]:
        """``{"top": [{"class", "index", "probability"}, ...]}``: the ``top_k`` classes of the softmax averaged
        over the input's views (one view: its own)."""
        probs = outputs.float().softmax(-1).mean(0).cpu()
        return {"top": top_classes(probs, self.classes, top_k)}
