"""Knowledge distillation of the fracture classifier: loss, steps, teachers, card and CLI."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from insightray.errors import ConfigError
from insightray.imaging.enhance import RadiographEnhancement
from insightray.models import ModelCard, load_card, save_card
from insightray.training.fracture import (
    AugmentSettings,
    FractureTrainConfig,
    StepRunner,
    build_classifier,
)
from insightray.training.fracture.distill import (
    Distiller,
    DistillSettings,
    Teacher,
    distillation_loss,
    load_teacher,
)
from tests.engine.fracture_helpers import make_fracture_model, make_labelled_folder
from tests.test_cli_detect import cli

pytestmark = pytest.mark.usefixtures("one_thread")

SIZE = 32
CONFIG = FractureTrainConfig(
    model="efficientnet_lite0",
    image_size=SIZE,
    batch_size=8,
    lr=1e-3,
    augment=AugmentSettings(enabled=False),
    device="cpu",
)


def _data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return rng.random((8, SIZE, SIZE)).astype(np.float16), np.array([0, 1] * 4)


def test_distillation_loss_is_t_squared_binary_kl() -> None:
    student, teacher = torch.tensor([1.0, -2.0, 0.3]), torch.tensor([-0.5, 1.5, 0.3])
    t = 3.0
    p, q = torch.sigmoid(teacher / t), torch.sigmoid(student / t)
    kl = p * torch.log(p / q) + (1 - p) * torch.log((1 - p) / (1 - q))
    assert float(distillation_loss(student, teacher, t)) == pytest.approx(
        t**2 * float(kl.mean()), rel=1e-5
    )
    assert float(distillation_loss(teacher, teacher, t)) == pytest.approx(0.0, abs=1e-6)


def test_a_distillation_step_lowers_the_distillation_loss() -> None:
    torch.manual_seed(1)  # a teacher with confident, image-dependent logits
    network = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(SIZE * SIZE, 1))
    torch.nn.init.normal_(network[1].weight, std=0.2)
    teacher = Teacher([(network, 1.0)], 0.0, SIZE, RadiographEnhancement(), "linear", "0" * 64)
    x, y = _data()
    torch.manual_seed(0)
    student = build_classifier(CONFIG).train()
    distiller = Distiller(teacher, DistillSettings(alpha=1.0, temperature=2.0))
    runner = StepRunner(student, CONFIG, x, y, torch.device("cpu"), 10, distill=distiller)
    batch = torch.from_numpy((x[:, None].astype(np.float32) - 0.449) / 0.226)
    target = teacher.logits(batch)

    def soft_loss() -> float:
        torch.manual_seed(7)  # the same dropout masks each time (train mode)
        with torch.no_grad():
            return float(distillation_loss(student(batch).reshape(-1), target, 2.0))

    before = soft_loss()
    for _ in range(3):  # one batch = the whole set, no augmentation
        runner.step()
    after = soft_loss()
    assert after < 0.8 * before, (before, after)
    logits = torch.tensor([0.5, -1.0])  # alpha 1: the loss is the soft term alone
    assert torch.allclose(
        distiller(batch[:2], logits, torch.tensor(9.0)),
        distillation_loss(logits, target[:2], 2.0),
    )


def test_alpha_zero_is_ordinary_training(tmp_path: Path) -> None:
    teacher = load_teacher(make_fracture_model(tmp_path / "teacher", size=SIZE, seed=1))
    x, y = _data()
    states, losses = [], []
    for distill in (None, Distiller(teacher, DistillSettings(alpha=0.0, temperature=4.0))):
        torch.manual_seed(0)
        student = build_classifier(CONFIG).train()
        runner = StepRunner(student, CONFIG, x, y, torch.device("cpu"), 4, distill=distill)
        losses.append([runner.step() for _ in range(2)])
        states.append(student.state_dict())
    assert losses[0] == losses[1]
    assert all(torch.equal(states[0][key], states[1][key]) for key in states[0])


def test_an_ensemble_teacher_gives_its_fused_logit(tmp_path: Path) -> None:
    cards = [make_fracture_model(tmp_path / f"m{k}", size=SIZE, seed=k) for k in range(2)]
    spec = {
        "method": "mean",
        "intercept": 0.25,
        "members": [
            {"name": f"m{k}", "weight": 0.5,
             "folds": [{"card": f"m{k}/card.json", "sha256": load_card(card).weights_sha256}]}
            for k, card in enumerate(cards)
        ],
    }  # fmt: skip
    (tmp_path / "ensemble.json").write_text(json.dumps(spec))
    digest = hashlib.sha256((tmp_path / "ensemble.json").read_bytes()).hexdigest()
    member = load_card(cards[0])
    ensemble = ModelCard(
        "fracture-ensemble", "classification", "0.0.1", ("fractured",), (SIZE, SIZE),
        preprocessing=member.preprocessing, thresholds={"operating_point": 0.5},
        weights_file="ensemble.json", weights_sha256=digest,
    )  # fmt: skip
    save_card(ensemble, tmp_path / "card.json")
    teacher = load_teacher(tmp_path)
    assert len(teacher.networks) == 2 and teacher.sha256 == digest
    batch = torch.randn(3, 1, SIZE, SIZE)
    singles = [load_teacher(card).logits(batch) for card in cards]
    assert torch.allclose(teacher.logits(batch), 0.25 + 0.5 * (singles[0] + singles[1]))
    larger = teacher.logits(torch.randn(2, 1, 48, 48))  # resized to the teacher's input
    assert larger.shape == (2,)


def test_bad_settings_are_config_errors(tmp_path: Path) -> None:
    for alpha, temperature in ((1.5, 4.0), (-0.1, 4.0), (0.5, 0.0), (0.5, -1.0)):
        with pytest.raises(ConfigError):
            DistillSettings(alpha, temperature)
    with pytest.raises(ConfigError, match="no teacher"):
        load_teacher(None)
    teacher = load_teacher(make_fracture_model(tmp_path / "teacher", size=SIZE))
    with pytest.raises(ConfigError, match="enhancement"):
        teacher.check_student(FractureTrainConfig(preprocessing=RadiographEnhancement(clahe=True)))


def test_optimize_fracture_writes_a_distilled_model_that_classifies(tmp_path: Path) -> None:
    data = make_labelled_folder(tmp_path / "data", count=24)
    teacher_card = make_fracture_model(tmp_path / "teacher", size=48)
    run = tmp_path / "distilled"
    code, stdout, stderr = cli(
        "optimize", "fracture", "--distill-from", str(teacher_card.parent), "--data", str(data),
        "--steps", "2", "--img", "40", "--device", "cpu", "--alpha", "0.7",
        "--temperature", "3", "--out", str(run),
    )  # fmt: skip
    assert code == 0, stderr
    assert "distilled from" in stdout
    card = load_card(run / "model" / "card.json")
    assert ModelCard.from_dict(card.to_dict()) == card
    lineage = card.lineage
    assert lineage.method == "distilled" and lineage.parent is None  # scratch student
    assert lineage.settings["alpha"] == 0.7 and lineage.settings["temperature"] == 3.0
    assert lineage.settings["teacher_sha256"] == load_card(teacher_card).weights_sha256
    assert lineage.settings["teacher_input_size"] == 48 and card.input_size == (40, 40)
    code, stdout, stderr = cli(
        "evaluate", "fracture", "--model", str(run / "model"), "--data", str(data), "--json",
        "--resamples", "100",
    )  # fmt: skip
    assert code == 0, stderr
    assert "auc" in json.loads(stdout)
    code, stdout, stderr = cli(
        "classify", "fracture", str(data / "images" / "case01.png"),
        "--model", str(run / "model"), "--json",
    )  # fmt: skip
    assert code == 0, stderr
    assert json.loads(stdout.splitlines()[0])["label"] in ("fractured", "not_fractured")


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--alpha", "1.5"], "alpha"),
        (["--temperature", "0"], "temperature"),
        ([], "exactly one method"),
        (["--distill-from", "no/such/model"], "error"),
    ],
)
def test_bad_cli_settings_fail_cleanly(tmp_path: Path, extra: list[str], message: str) -> None:
    teacher = make_fracture_model(tmp_path / "teacher", size=SIZE)
    given = extra if "--distill-from" in extra or not extra else [
        "--distill-from", str(teacher.parent), *extra,
    ]  # fmt: skip
    code, _, stderr = cli("optimize", "fracture", "--out", str(tmp_path / "o"), *given)
    assert code != 0
    assert message in stderr and "Traceback" not in stderr
