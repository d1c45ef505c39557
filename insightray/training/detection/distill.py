"""Knowledge distillation for the detector: a frozen teacher's head outputs as extra targets.

The detector trainer (:func:`~insightray.training.detection.trainer.train_detector`) adds this
term to its YOLO loss when ``TrainConfig.teacher`` names a trained detector; nothing else in
the run changes (augmentation, schedule, EMA, checkpoints)::

    loss = YOLO loss + distill_weight * (objectness + class [+ distill_feature_weight * feature])

On the **same augmented batch** as the student (the teacher in eval mode, under no_grad;
augmentation is random per step, so nothing is cached), per level and anchor cell:

* objectness: the binary cross-entropy of the student's objectness logit against the
  teacher's objectness probability, minus the teacher's own entropy (so the term is zero when
  the two agree), weighted per level by ``loss.balance`` and scaled by the YOLO objectness gain;
* class: the same for each class logit, averaged with the teacher's objectness probability as
  the weight (the teacher's class scores only count where it sees an object: Mehta & Ozturk,
  "Object detection at 200 frames per second", 2018), scaled by the YOLO class gain; skipped
  for one class, as in the YOLO loss;
* feature (``distill_feature_weight > 0``): the mean squared difference between the teacher's
  neck outputs (the Detect head's inputs) and the student's, the student's mapped by a
  trainable 1x1 convolution where the channel counts differ (FitNets, Romero et al., 2015).

Raw outputs are compared per anchor, so the student must use the teacher's anchors: a student
trained from scratch takes them (AutoAnchor is skipped), a student started from a model
(``TrainConfig.init``, e.g. a pruned copy of the teacher) must already have them.

Example:
    >>> config = TrainConfig(data="tbx11k/data.yaml", init="runs/pruned30/pruned",
    ...                      teacher="cxr-tbx11k-yolov5s")  # doctest: +SKIP
    >>> train_detector(config)  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from insightray.engine.weights import input_channels, load_torch_model, torch_model_card
from insightray.errors import ConfigError
from insightray.models import Lineage
from insightray.models.detection.yolo import YoloV5
from insightray.training.detection.loss import LossConfig, scaled_gains

if TYPE_CHECKING:
    from insightray.training.detection.config import TrainConfig
    from insightray.training.detection.prune import FineTune
    from insightray.training.detection.start import SslStart, StartingModel

__all__ = [
    "DetectorDistiller",
    "DetectorTeacher",
    "distillation_lineage",
    "distillation_terms",
    "load_detector_teacher",
    "soft_bce",
    "student_config",
]

#: How the teacher's outputs are obtained (recorded in the card).
TEACHER_OUTPUTS = "computed on each augmented batch in eval mode under no_grad (not cached)"


def soft_bce(student_logits: Tensor, teacher_logits: Tensor) -> Tensor:
    """Element-wise BCE of the student's logits against the teacher's probabilities, minus the
    teacher's entropy: the binary KL divergence, zero where the logits agree, never negative.
    """
    target = torch.sigmoid(teacher_logits)
    cross = F.binary_cross_entropy_with_logits(student_logits, target, reduction="none")
    entropy = F.binary_cross_entropy_with_logits(teacher_logits, target, reduction="none")
    return cross - entropy


def distillation_terms(
    student: Sequence[Tensor], teacher: Sequence[Tensor], num_classes: int, hyp: LossConfig
) -> tuple[Tensor, Tensor]:
    """The objectness and class distillation terms of raw head outputs (see the module).

    Args:
        student: One ``(B, A, H_l, W_l, 5 + num_classes)`` raw tensor per level.
        teacher: The teacher's, shaped alike.
        num_classes: Classes of both heads.
        hyp: The run's loss settings (level balance, image size for the gains).

    Returns:
        ``(objectness, class)``, each already multiplied by its YOLO gain.
    """
    _, obj_gain, cls_gain = scaled_gains(hyp, num_classes, len(student))
    obj = torch.zeros((), device=student[0].device)
    cls = torch.zeros((), device=student[0].device)
    for level, (s, t) in enumerate(zip(student, teacher, strict=True)):
        s, t = s.float(), t.float()
        obj = obj + hyp.balance[level] * soft_bce(s[..., 4], t[..., 4]).mean()
        if num_classes > 1:
            weight = torch.sigmoid(t[..., 4])
            per_cell = soft_bce(s[..., 5:], t[..., 5:]).mean(-1)
            cls = cls + (weight * per_cell).sum() / weight.sum().clamp(min=1e-6)
    return obj * obj_gain, cls * cls_gain


@dataclass(frozen=True)
class DetectorTeacher:
    """A frozen teacher detector.

    Attributes:
        network: The network, in eval mode with gradients off.
        name: What it is, for the card (``folder version``).
        sha256: SHA-256 of its weights.
        labels: Its class names.
    """

    network: YoloV5
    name: str
    sha256: str | None
    labels: tuple[str, ...]


def load_detector_teacher(model: str, labels: Sequence[str], channels: int) -> DetectorTeacher:
    """The teacher a ``--distill-from`` value names: a trained PyTorch YOLOv5 detector.

    Raises:
        ConfigError: Not a trained PyTorch YOLOv5, or its classes or image channels differ
            from the run's.
        InputNotFoundError: Nothing of that name exists.
    """
    card_path, card, network = load_torch_model(model)
    if not isinstance(network, YoloV5):
        raise ConfigError(str(card_path), "only a YOLOv5 detector can teach", "pass one")
    if tuple(card.labels) != tuple(labels) or input_channels(card) != channels:
        raise ConfigError(
            f"teacher {card_path.parent}",
            f"its classes {list(card.labels)} and {input_channels(card)} channels differ from "
            f"the run's {list(labels)} and {channels}",
            "distil from a detector trained on the same classes and channels",
        )
    network.eval().requires_grad_(False)
    name = f"{card_path.parent.name} {card.version}"
    return DetectorTeacher(network, name, card.weights_sha256, tuple(card.labels))


class DetectorDistiller(nn.Module):
    """The distillation term of one training step; its adaptors are trained with the student.

    Args:
        teacher: The frozen teacher.
        student: The student network (its Detect head's inputs are read by a hook).
        hyp: The run's loss settings.
        weight: ``distill_weight``.
        feature_weight: ``distill_feature_weight`` (0: no feature imitation, no adaptors).

    Raises:
        ConfigError: The student's anchors differ from the teacher's.
    """

    def __init__(
        self,
        teacher: DetectorTeacher,
        student: YoloV5,
        hyp: LossConfig,
        weight: float,
        feature_weight: float,
    ) -> None:
        super().__init__()
        if not torch.equal(student.detect.anchors.cpu(), teacher.network.detect.anchors.cpu()):
            raise ConfigError(
                f"teacher {teacher.name}",
                "its anchors differ from the student's, so their raw outputs do not correspond",
                "start the student from scratch (it takes the teacher's anchors) or from a "
                "model with the teacher's anchors",
            )
        self.teacher = teacher
        self.hyp = hyp
        self.weight = weight
        self.feature_weight = feature_weight
        self.num_classes = student.num_classes
        widths = zip(_neck_widths(student), _neck_widths(teacher.network), strict=True)
        self.adaptors = (
            nn.ModuleList(
                nn.Identity() if s == t else nn.Conv2d(s, t, 1, bias=False) for s, t in widths
            )
            if feature_weight > 0
            else nn.ModuleList()
        )
        self._student_features: list[Tensor] = []
        self._teacher_features: list[Tensor] = []
        student.detect.register_forward_pre_hook(self._keep(self._student_features))
        teacher.network.detect.register_forward_pre_hook(self._keep(self._teacher_features))

    @staticmethod
    def _keep(store: list[Tensor]) -> Any:
        def hook(_module: nn.Module, args: tuple[Any, ...]) -> None:
            store[:] = list(args[0])

        return hook

    def forward(self, images: Tensor, student_raw: Sequence[Tensor]) -> tuple[Tensor, Tensor]:
        """``(weight * term * batch_size, tensor([objectness, class, feature]))`` for this batch
        (the total on the YOLO loss's scale, the parts detached and unweighted)."""
        network = self.teacher.network
        if next(network.parameters()).device != images.device:
            network.to(images.device)
        with torch.no_grad():
            _, teacher_raw = network(images)
        obj, cls = distillation_terms(student_raw, teacher_raw, self.num_classes, self.hyp)
        feature = torch.zeros((), device=images.device)
        if self.feature_weight > 0:
            pairs = zip(self.adaptors, self._student_features, self._teacher_features, strict=True)
            for adaptor, s, t in pairs:
                feature = feature + F.mse_loss(adaptor(s.float()), t.float())
        total = obj + cls + self.feature_weight * feature
        parts = torch.stack((obj, cls, feature)).detach()
        return self.weight * total * images.shape[0], parts


def _neck_widths(network: YoloV5) -> list[int]:
    """The channel count of each Detect head input."""
    return [int(cast(nn.Conv2d, head).in_channels) for head in network.detect.heads]


def distillation_lineage(
    config: TrainConfig, start: StartingModel | SslStart | None, data: str
) -> Lineage:
    """A distilled run's lineage: the student's start as the parent, the teacher in settings."""
    from insightray.models import load_card
    from insightray.models.catalog import resolve_card

    card_path = resolve_card(config.teacher, default=config.teacher)
    teacher = load_card(card_path)
    settings: dict[str, Any] = {
        "teacher": f"{card_path.parent.name} {teacher.version}",
        "teacher_sha256": teacher.weights_sha256,
        "distill_weight": config.distill_weight,
        "distill_feature_weight": config.distill_feature_weight,
        "loss": "YOLO + weight * (objectness KL + teacher-objectness-weighted class KL"
        + (" + feature_weight * neck MSE)" if config.distill_feature_weight else ")"),
        "teacher_outputs": TEACHER_OUTPUTS,
        "student": config.model if start is None else "init",
        "epochs": config.epochs,
        "image_size": config.image_size,
        "lr0": config.lr0,
    }
    if start is None:
        return Lineage("distilled", None, None, settings, data)
    parent = start.lineage(config, data)
    return Lineage("distilled", parent.parent, parent.parent_sha256, settings, data)


def student_config(
    student: str,
    teacher: str,
    fine_tune: FineTune,
    out: str | Path,
    weight: float = 1.0,
    feature_weight: float = 0.0,
) -> TrainConfig:
    """The trainer's settings for ``optimize detect --distill-from TEACHER --student S``.

    Args:
        student: A detector size name (e.g. ``yolov5n``: from scratch, at the teacher's image
            size and channels) or a trained model folder, card or bundled name (e.g. a pruned
            detector): fine-tuned with :func:`~insightray.training.detection.prune.
            fine_tune_config`'s short recipe.
        teacher: The teacher (card, model folder or bundled name).
        fine_tune: Data, epochs, learning rate, batch, workers, device and seed.
        out: The run folder.
        weight: ``distill_weight``.
        feature_weight: ``distill_feature_weight``.

    Raises:
        ConfigError: No data.
    """
    import dataclasses

    from insightray.models import list_models
    from insightray.training.detection.config import TrainConfig
    from insightray.training.detection.prune import fine_tune_config

    if not fine_tune.data:
        raise ConfigError("optimize detect --distill-from", "no training data", "pass --data")
    teacher_path, teacher_card = torch_model_card(teacher)
    if student in list_models("detection"):  # from scratch, the from-scratch warm-up kept
        scratch = TrainConfig()
        base = dataclasses.replace(
            fine_tune_config(fine_tune, "", teacher_card, out),
            model=student,
            nominal_batch=scratch.nominal_batch,
            warmup_epochs=scratch.warmup_epochs,
            warmup_bias_lr=scratch.warmup_bias_lr,
            version=scratch.version,
        )
    else:
        card_path, card = torch_model_card(student)
        base = fine_tune_config(fine_tune, card_path.parent, card, out)
    return dataclasses.replace(
        base,
        teacher=str(teacher_path.parent),
        distill_weight=weight,
        distill_feature_weight=feature_weight,
    )
