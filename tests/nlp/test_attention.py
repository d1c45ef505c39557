"""Attention rollout of the disease classifier: the maths, the model's weights, the CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from insightray.errors import InputError
from insightray.nlp.attention import attention_rollout, pooled_weights, token_attention
from insightray.nlp.attribution import METHODS, explain_text
from insightray.nlp.classifier import DiseaseClassifier

TEXT = "My skin is red and itchy, with dry scaly silvery patches on my elbows and knees"


@pytest.fixture(scope="module")
def classifier() -> DiseaseClassifier:
    return DiseaseClassifier.load()


def _random_attention(layers: int, heads: int, seq: int) -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    return [
        torch.softmax(torch.randn(1, heads, seq, seq, generator=generator), dim=-1)
        for _ in range(layers)
    ]


def test_rollout_rows_are_distributions_and_follow_the_definition() -> None:
    layers = _random_attention(3, 4, 6)
    rollout = attention_rollout(layers)
    assert rollout.shape == (1, 6, 6)
    assert torch.allclose(rollout.sum(dim=-1), torch.ones(1, 6), atol=1e-5)
    assert bool((rollout >= 0).all())
    # By hand: heads averaged, half identity for the residual, layers multiplied last-first.
    mixed = [0.5 * a.mean(dim=1)[0] + 0.5 * torch.eye(6) for a in layers]
    assert torch.allclose(rollout[0], mixed[2] @ mixed[1] @ mixed[0], atol=1e-5)
    # Tokens that only attend to themselves keep all of their own weight.
    identity = [torch.eye(5).expand(1, 2, 5, 5) for _ in range(4)]
    assert torch.allclose(attention_rollout(identity)[0], torch.eye(5))


def test_pooled_weights_read_what_the_head_reads() -> None:
    rollout = attention_rollout(_random_attention(2, 2, 4))
    mask = torch.tensor([[1, 1, 1, 0]])
    assert torch.equal(pooled_weights(rollout, mask, "cls"), rollout[:, 0])
    mean = pooled_weights(rollout, mask, "mean")
    assert torch.allclose(mean, rollout[:, :3].mean(dim=1))
    assert float(mean.sum()) == pytest.approx(1.0, abs=1e-5)
    with pytest.raises(InputError, match="no layers"):
        attention_rollout([])
    with pytest.raises(InputError, match="batch, heads, seq, seq"):
        attention_rollout([torch.ones(2, 3, 4)])


def test_the_classifier_token_weights_sum_to_one_and_leave_its_kernel(
    classifier: DiseaseClassifier,
) -> None:
    loaded = classifier.loaded
    encoded = loaded.tokenizer([TEXT], return_tensors="pt")
    kernel = loaded.model.encoder.config._attn_implementation
    weights = token_attention(loaded.model, encoded["input_ids"], encoded["attention_mask"])
    assert weights.shape == (encoded["input_ids"].shape[1],)
    assert weights.sum() == pytest.approx(1.0, abs=1e-5) and (weights >= 0).all()
    assert len(np.unique(np.round(weights, 4))) > 3, "a real map, not uniform"
    assert loaded.model.encoder.config._attn_implementation == kernel


def test_attention_explanation_covers_the_words_for_any_label(
    classifier: DiseaseClassifier,
) -> None:
    explained = explain_text(classifier.loaded, TEXT, method="attention-rollout")
    assert explained.method == "attention-rollout" and explained.convergence_delta is None
    assert explained.label == classifier.decide(TEXT)[0]
    assert [word.text for word in explained.words] == TEXT.split()
    assert all(TEXT[w.start : w.end] == w.text for w in explained.words)
    assert max(w.weight for w in explained.words) == pytest.approx(1.0)
    assert min(w.weight for w in explained.words) >= 0.0
    other = explain_text(classifier.loaded, TEXT, label="Migraine", method="attention-rollout")
    assert other.label == "Migraine"
    assert [w.weight for w in other.words] == [w.weight for w in explained.words]
    with pytest.raises(InputError, match="unknown"):
        explain_text(classifier.loaded, TEXT, method="saliency")


def test_cli_explain_method_and_the_old_flag() -> None:
    from insightray.cli import app
    from insightray.cli.nlp import ExplainMethod

    assert tuple(method.value for method in ExplainMethod) == METHODS
    runner = CliRunner()
    attention = runner.invoke(
        app, ["nlp", "analyze", TEXT, "--json", "--explain-method", "attention-rollout"]
    )
    assert attention.exit_code == 0, attention.output
    record = json.loads(attention.stdout.strip().splitlines()[-1])
    assert record["explanation"]["method"] == "attention-rollout"
    assert len(record["explanation"]["words"]) == len(TEXT.split())
    table = runner.invoke(app, ["nlp", "analyze", TEXT, "--explain"])
    assert table.exit_code == 0, table.output
    assert "(integrated-gradients)" in table.stdout
    wrong = runner.invoke(app, ["nlp", "analyze", TEXT, "--explain-method", "saliency"])
    assert wrong.exit_code != 0
