"""Losses and metrics of a head (see ``tasks.py``): the torch side of what each task trains."""

from __future__ import annotations

import torch
import torchmetrics
from torch import nn
from torch.nn import functional as F

from netspec.training.tasks import Head

DICE_EPS = 1.0  # smoothing of the soft Dice ratio: an absent class scores 1, not 0/0


def dice_loss(logits: torch.Tensor, target: torch.Tensor, ignore_index: int | None) -> torch.Tensor:
    """1 − mean soft Dice over classes, from softmax probabilities; ignored pixels count nowhere."""
    classes = logits.shape[1]
    probs = logits.float().softmax(dim=1)
    valid = torch.ones_like(target, dtype=torch.bool) if ignore_index is None else target != ignore_index
    safe = torch.where(valid, target, torch.zeros_like(target))
    one_hot = F.one_hot(safe, classes).movedim(-1, 1).to(probs.dtype)
    mask = valid.unsqueeze(1).to(probs.dtype)
    probs, one_hot = probs * mask, one_hot * mask
    dims = (0, *range(2, logits.dim()))
    overlap = (probs * one_hot).sum(dims)
    total = probs.sum(dims) + one_hot.sum(dims)
    return 1 - ((2 * overlap + DICE_EPS) / (total + DICE_EPS)).mean()


def _mean_over_labelled(out, target, weight, ignore_index: int, label_smoothing: float) -> torch.Tensor:
    """Cross-entropy's mean over the labelled targets, and 0 for a batch with none: PyTorch's own
    mean divides by zero there, so one batch of unlabelled samples made an epoch's loss NaN."""
    total = F.cross_entropy(
        out,
        target,
        weight=weight,
        ignore_index=ignore_index,
        label_smoothing=label_smoothing,
        reduction="sum",
    )
    labelled = target != ignore_index
    if weight is None:
        count = labelled.sum().to(total.dtype)
    else:  # PyTorch's weighted mean divides by the labelled targets' class weights
        count = (weight[torch.where(labelled, target, 0)] * labelled).sum().to(total.dtype)
    return total / count.clamp(min=torch.finfo(total.dtype).tiny)


class HeadLoss(nn.Module):
    """The loss of one head: output and target in, a scalar out (class weights as a buffer)."""

    def __init__(self, head: Head):
        super().__init__()
        self.head = head
        weights = torch.tensor(head.class_weights) if head.class_weights is not None else None
        self.register_buffer("class_weights", weights, persistent=False)

    def forward(self, out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        head = self.head
        if head.loss == "dice":
            return dice_loss(out, target, head.ignore_index)
        if head.loss in ("cross_entropy", "cross_entropy_dice"):
            weight = None if self.class_weights is None else self.class_weights.to(out.dtype)
            if head.ignore_index is None:
                loss = F.cross_entropy(out, target, weight=weight, label_smoothing=head.label_smoothing)
            else:
                loss = _mean_over_labelled(out, target, weight, head.ignore_index, head.label_smoothing)
            if head.loss == "cross_entropy_dice":
                loss = loss + dice_loss(out, target, head.ignore_index)
            return loss
        target = target.to(out.dtype)
        if target.shape != out.shape:
            target = target.reshape(out.shape)
        if head.loss == "mse":
            return F.mse_loss(out, target)
        if head.loss == "l1":
            return F.l1_loss(out, target)
        if head.loss == "huber":
            return F.huber_loss(out, target, delta=head.huber_delta)
        return F.binary_cross_entropy_with_logits(out, target)


def build_metrics(head: Head) -> nn.ModuleDict:
    """The torchmetrics of a head, keyed by the names they are logged under (without stage)."""
    from torchmetrics import classification as C
    from torchmetrics import regression as R

    classes, ignore = head.num_classes, head.ignore_index
    made: dict[str, torchmetrics.Metric] = {}
    for name in head.metrics:
        key = head.logged("", name)[1:]  # "acc", "aux_miou", …
        if name in ("accuracy", "top3_accuracy", "top5_accuracy"):
            k = {"accuracy": 1, "top3_accuracy": 3, "top5_accuracy": 5}[name]
            # a classifier's accuracy is the share of samples right (torchmetrics' `Accuracy`); its
            # MulticlassAccuracy defaults to the mean over classes, where a class with no sample in
            # the split scores 0 (4 of 10 right read 0.27). A segmentation's accuracy is that mean
            # over classes ("mean accuracy"); pixel_accuracy is its share of pixels right.
            average = "micro" if head.task == "classification" else "macro"
            # the class count was checked before training: skip per-update argument checks
            made[key] = C.MulticlassAccuracy(
                classes, top_k=min(k, classes), average=average, ignore_index=ignore, validate_args=False
            )
        elif name == "pixel_accuracy":
            made[key] = C.MulticlassAccuracy(
                classes, average="micro", ignore_index=ignore, validate_args=False
            )
        elif name == "miou":
            made[key] = C.MulticlassJaccardIndex(classes, ignore_index=ignore, validate_args=False)
        elif name == "dice":  # per-class F1 is the Dice coefficient; the macro mean is mean Dice
            made[key] = C.MulticlassF1Score(classes, ignore_index=ignore, validate_args=False)
        elif name == "psnr":
            from torchmetrics.image import PeakSignalNoiseRatio

            made[key] = PeakSignalNoiseRatio(data_range=head.value_range)
        elif name == "mae":
            made[key] = R.MeanAbsoluteError()
        elif name == "mse":
            made[key] = R.MeanSquaredError()
        elif name == "r2":  # pooled over every value: 1 − SS_res / SS_tot around the targets' mean
            made[key] = R.R2Score()
    return nn.ModuleDict(made)


def metric_inputs(head: Head, out: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(predictions, targets) as a head's metrics take them: float values flattened (pooled)."""
    pred = out.detach().float()
    if head.num_classes is not None:
        return pred, target
    return pred.reshape(-1), target.to(pred.dtype).reshape(-1)
