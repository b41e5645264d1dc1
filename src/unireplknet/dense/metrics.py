"""Dense-prediction metrics: mIoU and pixel accuracy from a confusion matrix; COCO box and mask AP.

Segmentation follows MMSeg's definitions (the paper's ADE20K numbers): per class
``IoU = TP / (TP + FP + FN)`` and ``Acc = TP / (TP + FN)`` over all evaluated pixels, pixels labelled
``ignore_index`` left out; ``mIoU``/``mAcc`` average over the classes present in the labels or the
predictions (a class absent from both is undefined, not zero); ``aAcc`` is the pixel accuracy.
Values are percentages.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F

from ..metrics import Metrics

__all__ = ["SegmentationMetrics", "DetectionMetrics", "confusion_matrix", "scores_from_confusion", "resize_logits"]


def resize_logits(logits: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """``(N, K, h, w)`` logits bilinearly resized to the labels' ``(H, W)`` (unchanged when equal)."""
    if tuple(logits.shape[-2:]) == tuple(size):
        return logits
    return F.interpolate(logits.float(), size=tuple(size), mode="bilinear", align_corners=False)


def confusion_matrix(
    pred: torch.Tensor, target: torch.Tensor, num_classes: int, ignore_index: int = 255
) -> torch.Tensor:
    """``(K, K)`` int64 counts, rows = true class, columns = predicted class, for label maps of one shape."""
    if pred.shape != target.shape:
        raise ValueError(f"prediction shape {tuple(pred.shape)} differs from label shape {tuple(target.shape)}")
    valid = target != ignore_index
    target, pred = target[valid].long(), pred[valid].long()
    if target.numel() and (target.min() < 0 or target.max() >= num_classes):
        raise ValueError(
            f"labels must be class ids 0..{num_classes - 1} or {ignore_index} (ignored), found "
            f"{sorted(set(target.unique().tolist()) - set(range(num_classes)))[:5]}"
        )
    return torch.bincount(target * num_classes + pred, minlength=num_classes**2).reshape(num_classes, num_classes)


def scores_from_confusion(confusion: torch.Tensor) -> dict[str, Any]:
    """``mIoU``, ``mAcc``, ``aAcc`` (percent) and per-class ``IoU`` / ``Acc`` lists (NaN: class absent)."""
    confusion = confusion.double()
    tp = confusion.diag()
    labelled = confusion.sum(1)
    predicted = confusion.sum(0)
    union = labelled + predicted - tp
    iou = tp / union  # 0/0 -> NaN for classes absent from labels and predictions
    acc = tp / labelled
    total = confusion.sum()
    return {
        "mIoU": 100 * iou.nanmean().item(),
        "mAcc": 100 * acc.nanmean().item(),
        "aAcc": 100 * (tp.sum() / total).item() if total > 0 else float("nan"),
        "IoU": (100 * iou).tolist(),
        "Acc": (100 * acc).tolist(),
    }


class SegmentationMetrics(Metrics):
    """Accumulates a confusion matrix (and the mean loss) over ``(N, K, H, W)`` logits and ``(N, H, W)`` labels."""

    def __init__(self, num_classes: int, ignore_index: int = 255) -> None:
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.confusion = torch.zeros(num_classes, num_classes, dtype=torch.int64)
        self.loss_sum = torch.zeros((), dtype=torch.float64)
        self.batches = torch.zeros((), dtype=torch.float64)

    def update(self, outputs: torch.Tensor, targets: torch.Tensor, loss: torch.Tensor | None = None) -> None:
        pred = resize_logits(outputs, targets.shape[-2:]).argmax(1)
        self.confusion += confusion_matrix(pred, targets, self.num_classes, self.ignore_index).cpu()
        if loss is not None:
            self.loss_sum += float(loss)
            self.batches += 1

    def compute(self) -> dict[str, float]:
        scores = scores_from_confusion(self.confusion)
        out = {k: scores[k] for k in ("mIoU", "mAcc", "aAcc")}
        if self.batches > 0:
            out["loss"] = (self.loss_sum / self.batches).item()
        return out

    def per_class(self) -> dict[str, list[float]]:
        """Per-class ``IoU`` and ``Acc`` in percent (NaN where a class is absent)."""
        scores = scores_from_confusion(self.confusion)
        return {"IoU": scores["IoU"], "Acc": scores["Acc"]}

    def state_tensors(self) -> list[torch.Tensor]:
        return [self.confusion, self.loss_sum, self.batches]


class DetectionMetrics(Metrics):
    """COCO-style AP (pycocotools' evaluation via torchmetrics) for torchvision-format detections.

    ``outputs``: per image ``{'boxes' (D, 4) xyxy, 'scores' (D,), 'labels' (D,), ['masks' (D, 1, H, W) probs]}``
    (or a :class:`~unireplknet.dense.detection.TrainableDetector` output holding them);
    ``targets``: per image ``{'boxes' (G, 4), 'labels' (G,), ['masks' (G, H, W)], ['iscrowd' (G,)]}``.
    Reports ``AP``, ``AP50``, ``AP75``, ``APs/m/l`` for boxes and, with masks, ``mask_AP``, ``mask_AP50``,
    ... (all percent; sizes without objects are left out); and ``loss`` when finite losses are passed.

    The COCO evaluation needs all detections at once, not sums, so :meth:`state_tensors` has nothing to
    add up: with several processes each evaluates its own share (the engine should evaluate on one).
    """

    def __init__(self, masks: bool, mask_threshold: float = 0.5) -> None:
        from torchmetrics.detection import MeanAveragePrecision

        self.masks = masks
        self.mask_threshold = mask_threshold
        iou_type = ("bbox", "segm") if masks else "bbox"
        self.map = MeanAveragePrecision(iou_type=iou_type, backend="pycocotools")
        self.loss_sum = 0.0
        self.batches = 0

    def update(self, outputs: Any, targets: list[dict[str, torch.Tensor]], loss: torch.Tensor | None = None) -> None:
        if isinstance(outputs, Mapping):  # a TrainableDetector's eval output
            outputs = outputs["detections"]
        preds, gts = [], []
        for out, tgt in zip(outputs, targets, strict=True):
            pred = {k: out[k].detach().cpu() for k in ("boxes", "scores", "labels")}
            gt = {k: tgt[k].cpu() for k in ("boxes", "labels")}
            if "iscrowd" in tgt:
                gt["iscrowd"] = tgt["iscrowd"].cpu()
            if self.masks:
                pred["masks"] = out["masks"][:, 0].detach().cpu() > self.mask_threshold
                gt["masks"] = tgt["masks"].cpu().bool()
            preds.append(pred)
            gts.append(gt)
        self.map.update(preds, gts)
        if loss is not None and torch.isfinite(loss):  # detectors have losses only in training mode
            self.loss_sum += float(loss)
            self.batches += 1

    def compute(self) -> dict[str, float]:
        result = self.map.compute()
        names = {
            "map": "AP",
            "map_50": "AP50",
            "map_75": "AP75",
            "map_small": "APs",
            "map_medium": "APm",
            "map_large": "APl",
        }
        out = {}
        for prefix in ("bbox_", "segm_") if self.masks else ("",):
            label = "mask_" if prefix == "segm_" else ""
            for key, name in names.items():
                value = float(result[prefix + key])
                if value >= 0:  # -1: no objects of that kind (e.g. no small ones): undefined, left out
                    out[label + name] = 100 * value
        if self.batches:
            out["loss"] = self.loss_sum / self.batches
        return out

    def state_tensors(self) -> list[torch.Tensor]:
        return []
