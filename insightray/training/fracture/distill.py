"""Knowledge distillation of a fracture classifier from a teacher model or ensemble.

The student is trained by the ordinary fracture trainer
(:func:`~insightray.training.fracture.trainer.train_fracture`, the same steps, schedule,
augmentation and model selection); only its loss changes (Hinton et al., 2015, for one
logit)::

    loss = (1 - alpha) * hard_loss(student, labels)
           + alpha * T^2 * KL(sigmoid(teacher / T) || sigmoid(student / T))

where ``hard_loss`` is the configured loss (BCE, focal...) and the KL divergence is between
the two Bernoulli distributions of the temperature-softened logits (``T^2`` keeps the soft
term's gradients on the hard term's scale). The teacher's logits are computed on the **same
augmented batch** as the student's, under ``torch.no_grad`` and in eval mode, every step:
the augmentation is random per step, so per-image caching would give the teacher other
images than the student sees. A teacher whose input size differs from the student's sees
the batch resized (bilinear) to its own size; its enhancement and normalisation must match
the student's. An ensemble teacher (``train fracture-ensemble``) contributes its fused raw
logit: the intercept plus the weighted member means of the fold models' logits.

The model folder's card says ``lineage.method == "distilled"``, the parent is the student's
initial weights (a file, the packaged ImageNet weights, or none from scratch), and the
settings name the teacher, its SHA-256, ``alpha`` and ``T``.

Example:
    >>> settings = DistillSettings(alpha=0.7, temperature=4.0)
    >>> teacher = load_teacher("fracture-roboflow-lite0")  # doctest: +SKIP
    >>> result = distill_fracture(config, teacher, settings)  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from insightray.engine.classification import GRAY_MEAN, GRAY_STD, FracturePredictor
from insightray.engine.classification_ensemble import ClassifierEnsemble
from insightray.errors import ConfigError
from insightray.imaging.enhance import RadiographEnhancement
from insightray.models import Lineage, ModelCard, load_card, save_card
from insightray.models.catalog import resolve_card, sha256_file
from insightray.training.fracture.config import FractureTrainConfig
from insightray.training.fracture.dataset import FractureSplits
from insightray.training.fracture.trainer import FractureTrainResult, Log, train_fracture

__all__ = [
    "DistillSettings",
    "Distiller",
    "Teacher",
    "distill_fracture",
    "distillation_loss",
    "load_teacher",
]

#: How the teacher's outputs are obtained (recorded in the card).
TEACHER_OUTPUTS = (
    "computed on each augmented batch under no_grad (not cached: augmentation is random)"
)


@dataclass(frozen=True)
class DistillSettings:
    """The distillation loss's settings.

    Attributes:
        alpha: Weight of the soft (teacher) term, in ``[0, 1]``; 0 is ordinary training.
        temperature: Softening temperature ``T > 0`` of both logits.
    """

    alpha: float = 0.5
    temperature: float = 4.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.alpha <= 1.0:
            raise ConfigError("distillation alpha", f"{self.alpha} is outside [0, 1]",
                              "use e.g. --alpha 0.5")  # fmt: skip
        if not self.temperature > 0:
            raise ConfigError("distillation temperature", f"{self.temperature} is not positive",
                              "use e.g. --temperature 4")  # fmt: skip


def distillation_loss(
    student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float
) -> torch.Tensor:
    """``T^2`` times the mean binary KL divergence between the softened teacher and student.

    Zero when the logits agree; its gradient in the student is ``T (p_s - p_t)`` per image.
    """
    target = torch.sigmoid(teacher_logits / temperature)
    cross = F.binary_cross_entropy_with_logits(student_logits / temperature, target)
    entropy = F.binary_cross_entropy_with_logits(teacher_logits / temperature, target)
    return temperature**2 * (cross - entropy)


class Teacher:
    """Frozen teacher networks whose weighted logits sum to the teacher's logit.

    Args:
        networks: ``(network, weight)`` pairs; the teacher's logit is
            ``intercept + sum(weight * network logit)``.
        intercept: Added to the weighted sum (a stacking ensemble's).
        input_size: The teacher's square input side.
        enhancement: The image enhancement its inputs had in training.
        name: What it is, for the card (``name version (path)``).
        sha256: SHA-256 of its weights (an ensemble's: of its ``ensemble.json``).
    """

    def __init__(
        self,
        networks: Sequence[tuple[nn.Module, float]],
        intercept: float,
        input_size: int,
        enhancement: RadiographEnhancement,
        name: str,
        sha256: str,
    ) -> None:
        self.networks = [(network.eval().requires_grad_(False), w) for network, w in networks]
        self.intercept = intercept
        self.input_size = input_size
        self.enhancement = enhancement
        self.name = name
        self.sha256 = sha256
        self.device = torch.device("cpu")

    def logits(self, batch: torch.Tensor) -> torch.Tensor:
        """The teacher's raw logit per image of a normalised ``(N, 1, H, W)`` batch."""
        if batch.shape[-1] != self.input_size or batch.shape[-2] != self.input_size:
            batch = F.interpolate(batch, size=(self.input_size, self.input_size),
                                  mode="bilinear", align_corners=False)  # fmt: skip
        if batch.device != self.device:
            self.device = batch.device
            for network, _ in self.networks:
                network.to(self.device)
        total = torch.full((len(batch),), self.intercept, device=batch.device)
        with torch.no_grad():
            for network, weight in self.networks:
                total = total + weight * network(batch).reshape(len(batch), -1)[:, -1].float()
        return total

    def check_student(self, config: FractureTrainConfig) -> None:
        """Refuse a student whose images are prepared otherwise than the teacher's.

        Raises:
            ConfigError: Another enhancement.
        """
        if config.preprocessing != self.enhancement:
            raise ConfigError(
                f"teacher {self.name}",
                "its image enhancement differs from the student's",
                "give the student the teacher's preprocessing section",
            )


def load_teacher(model: str | Path | None) -> Teacher:
    """The teacher a ``--distill-from`` value names: a fracture model or ensemble.

    Raises:
        ConfigError: No teacher named, not a fracture classifier, or members prepared
            differently.
        InputNotFoundError: Nothing of that name exists.
        CorruptFileError: Weights differ from their recorded SHA-256.
    """
    from insightray.engine import load_predictor

    if model is None or not str(model).strip():
        raise ConfigError("distillation", "no teacher given", "pass --distill-from MODEL")
    card_path = resolve_card(model, default="")
    card = load_card(card_path)
    predictor = load_predictor(card_path, task="classification")
    folds: list[tuple[FracturePredictor, float]]
    if isinstance(predictor, ClassifierEnsemble):
        intercept = predictor.intercept
        folds = [
            (fold, member.weight / len(member.folds))
            for member in predictor.members
            for fold in member.folds
        ]
    else:
        intercept, folds = 0.0, [(predictor, 1.0)]
    sizes = {fold.card.input_size for fold, _ in folds}
    enhancements = {json.dumps(fold.card.preprocessing.enhancement, sort_keys=True)
                    for fold, _ in folds}  # fmt: skip
    if len(sizes) != 1 or len(enhancements) != 1 or any(_norm(f.card) for f, _ in folds):
        raise ConfigError(
            f"teacher {card_path}",
            "its members differ in input size, enhancement or normalisation from each other "
            "or from the fracture trainer's",
            "distil from members prepared alike",
        )
    height, width = sizes.pop()
    if height != width:
        raise ConfigError(f"teacher {card_path}", "its input is not square", "use a square model")
    enhancement = RadiographEnhancement.from_dict(json.loads(enhancements.pop()))
    name = f"{card.name} {card.version} ({card_path.parent.name})"
    sha256 = card.weights_sha256 or sha256_file(card_path.parent / (card.weights_file or ""))
    networks = [(fold.model, weight) for fold, weight in folds]
    return Teacher(networks, intercept, height, enhancement, name, sha256)


def _norm(card: ModelCard) -> bool:
    """True when ``card``'s inputs are not normalised as the fracture trainer's are."""
    pre = card.preprocessing
    mean, std = pre.mean or (GRAY_MEAN,), pre.std or (GRAY_STD,)
    return (pre.channels or 1) != 1 or mean != (GRAY_MEAN,) or std != (GRAY_STD,)


class Distiller:
    """The student's loss in :class:`~insightray.training.fracture.steps.StepRunner`.

    Args:
        teacher: The frozen teacher.
        settings: ``alpha`` and ``T``.
    """

    def __init__(self, teacher: Teacher, settings: DistillSettings) -> None:
        self.teacher = teacher
        self.settings = settings

    def __call__(
        self, batch: torch.Tensor, student_logits: torch.Tensor, hard_loss: torch.Tensor
    ) -> torch.Tensor:
        """``(1 - alpha) * hard_loss + alpha * T^2 * KL`` on this batch (see the module)."""
        alpha = self.settings.alpha
        if alpha == 0.0:
            return hard_loss
        teacher_logits = self.teacher.logits(batch.float())
        soft = distillation_loss(student_logits, teacher_logits, self.settings.temperature)
        return (1.0 - alpha) * hard_loss + alpha * soft


def distill_fracture(
    config: FractureTrainConfig,
    teacher: Teacher,
    settings: DistillSettings,
    log: Log = print,
    *,
    splits: FractureSplits | None = None,
) -> FractureTrainResult:
    """Train the student of ``config`` with the teacher's soft targets; write its model folder.

    Everything else is :func:`~insightray.training.fracture.trainer.train_fracture` (the
    output is ``config.out``, the model in ``config.out/model``); the card's lineage says
    ``distilled``.

    Raises:
        ConfigError: A student prepared otherwise than the teacher, or invalid settings.
        InputNotFoundError: The data is missing.
    """
    teacher.check_student(config)
    result = train_fracture(config, log, splits=splits, distill=Distiller(teacher, settings))
    card = load_card(result.card_path)
    parent, parent_sha256 = _student_init(config)
    lineage = Lineage(
        "distilled",
        parent,
        parent_sha256,
        {
            "teacher": teacher.name,
            "teacher_sha256": teacher.sha256,
            "teacher_members": len(teacher.networks),
            "teacher_input_size": teacher.input_size,
            "alpha": settings.alpha,
            "temperature": settings.temperature,
            "loss": f"(1 - alpha) * {config.loss} + alpha * T^2 * binary KL",
            "teacher_outputs": TEACHER_OUTPUTS,
        },
        config.data,
    )
    card = dataclasses.replace(
        card,
        lineage=lineage,
        notes=f"Distilled from {teacher.name} (alpha {settings.alpha}, T "
        f"{settings.temperature}). {card.notes}",
    )
    save_card(card, result.card_path)
    return result


def _student_init(config: FractureTrainConfig) -> tuple[str | None, str | None]:
    """The student's parent: its initial weights file, the ImageNet weights, or none."""
    if config.init_weights:
        return config.init_weights, sha256_file(Path(config.init_weights))
    if config.pretrained:
        from insightray.models.classification.pretrained import lite0_imagenet_path

        path = lite0_imagenet_path()
        return f"ImageNet {config.model} ({path.name})", sha256_file(path)
    return None, None
