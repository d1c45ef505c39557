"""The BiLSTM-CRF NER tagger as a federated task: CoNLL sentences per site, server-side F1.

Data: a CoNLL corpus folder (``train.tsv``, ``devel.tsv``, ``test.tsv``, as in
``ncbi_disease``). :meth:`NerTask.split` deals the training sentences to sites in contiguous
blocks (sentences of one abstract stay together, so sites see different documents and
diseases; ``size_skew`` as for fracture; there is no label skew with one entity type) and
gives the coordinator ``devel.tsv`` (its own data) and the held-out ``test.tsv``.

Vocabulary: a BiLSTM-CRF's word embedding needs one vocabulary at every site, and a
vocabulary built from the sites' words would send their words (clinical text can hold names)
to the coordinator. So the coordinator builds it from its own ``devel.tsv``
(:class:`~insightray.models.text.ner_encoding.NerVocab`, with MiniLM WordPieces) and sends it
with every round's instructions; a site word outside it is an unknown word whose characters
and WordPieces (a fixed, data-independent vocabulary) still reach the network.

Each round a site trains with the NER trainer's
:func:`~insightray.training.ner.trainer.train_local_epochs` (its batches, loss, clipping and
optimiser, ``settings.lr`` and ``settings.batch_size``); FedProx adds its proximal term. The
server scores each round's model by exact-span entity F1 on ``devel.tsv`` and writes a tagger
folder for ``insightray evaluate ner --model DIR``.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from numpy.typing import NDArray
from torch import nn

from insightray.errors import ConfigError
from insightray.federated.settings import FederatedSettings
from insightray.federated.sites import SUMMARY_FILE, TEST_FOLDER
from insightray.federated.tasks.base import FederatedTask, LocalResult, Spec
from insightray.models import Lineage, ModelCard
from insightray.models.text.ner_encoding import NerVocab, TaggedSentence

__all__ = ["COORDINATOR_FOLDER", "NerTask"]

TRAIN_FILE, DEVEL_FILE, TEST_FILE = "train.tsv", "devel.tsv", "test.tsv"
COORDINATOR_FOLDER = "coordinator"
VOCAB_KEY = "ner-vocab"


def _config(settings: FederatedSettings, seed: int | None = None) -> Any:
    from insightray.training.ner.trainer import NerTrainConfig

    return NerTrainConfig(
        batch_size=settings.batch_size,
        lr=settings.lr,
        seed=settings.seed if seed is None else seed,
        progress=False,
        command=f"insightray federated simulate --task ner ({settings.strategy})",
    )


def _sentences(path: str | Path, name: str) -> list[TaggedSentence]:
    from insightray.training.ner.conll import read_conll

    source = Path(path)
    return read_conll(source / name if source.is_dir() else source)


class NerTask(FederatedTask):
    """Federated NER (see the module docstring)."""

    name = "ner"
    metric = "f1"
    metric_name = "F1"
    needs_eval_data = True

    def model_spec(self, settings: FederatedSettings) -> Spec:
        if not settings.eval_data:
            raise ConfigError(
                "federated ner",
                "the coordinator has no data to build the vocabulary from",
                "give it a devel.tsv (--eval-data)",
            )
        vocab = NerVocab.build(_sentences(settings.eval_data, DEVEL_FILE), pieces=True)
        return {VOCAB_KEY: json.dumps(vocab.to_dict())}

    def _tagger(self, settings: FederatedSettings, spec: Mapping[str, Any]) -> Any:
        from insightray.training.ner.trainer import build_tagger

        vocab = NerVocab.from_dict(json.loads(str(spec[VOCAB_KEY])))
        return build_tagger(vocab, _config(settings))

    def build_model(
        self, settings: FederatedSettings, spec: Mapping[str, Any], *, initial: bool = False
    ) -> nn.Module:
        model: nn.Module = self._tagger(settings, spec).model
        return model

    def load_site(self, folder: str, settings: FederatedSettings, cache: str) -> Any:
        return _sentences(folder, TRAIN_FILE)

    def train_local(
        self,
        model: nn.Module,
        data: Any,
        settings: FederatedSettings,
        spec: Mapping[str, Any],
        *,
        seed: int,
        proximal_mu: float,
    ) -> LocalResult:
        from insightray.models.text.ner_encoding import NerEncoder
        from insightray.training.ner.trainer import train_local_epochs

        vocab = NerVocab.from_dict(json.loads(str(spec[VOCAB_KEY])))
        fit = train_local_epochs(
            model,  # type: ignore[arg-type]
            NerEncoder(vocab),
            data,
            _config(settings, seed),
            epochs=settings.local_epochs,
            proximal_mu=proximal_mu,
        )
        return LocalResult(fit.steps, fit.sentences, fit.loss)

    def scorer(
        self,
        settings: FederatedSettings,
        spec: Mapping[str, Any],
        path: str,
        cache: Path,
        *,
        full: bool = False,
    ) -> Callable[[nn.Module], dict[str, Any]]:
        from insightray.engine.ner import LoadedNer
        from insightray.training.ner.trainer import evaluate_ner

        tagger = self._tagger(settings, spec)
        sentences = _sentences(path, DEVEL_FILE)

        def score(model: nn.Module) -> dict[str, Any]:
            model.eval()
            scores = evaluate_ner(LoadedNer(model, tagger.encoder, tagger.card), sentences)  # type: ignore[arg-type]
            return {"precision": scores.precision, "recall": scores.recall, "f1": scores.f1}

        return score

    def split(
        self, data: Path, sites: int, out: Path, *, label_skew: float, size_skew: float, seed: int
    ) -> None:
        from insightray.training.ner.conll import write_conll

        if (out / SUMMARY_FILE).exists():
            raise ConfigError(str(out), "already holds a site split", "choose an empty --out")
        train = _sentences(data, TRAIN_FILE)
        shares = [(1 + size_skew) ** -k for k in range(sites)]
        bounds = [0]
        for k in range(sites):
            bounds.append(round(len(train) * sum(shares[: k + 1]) / sum(shares)))
        summary: dict[str, Any] = {"task": self.name, "source": str(data), "sites": []}
        for k in range(sites):
            block = train[bounds[k] : bounds[k + 1]]
            if not block:
                raise ConfigError(str(data), f"too few sentences for {sites} sites", "use fewer")
            write_conll(block, out / f"site_{k}" / TRAIN_FILE)
            mentions = sum(tag.startswith("B-") for s in block for tag in s.tags)
            summary["sites"].append({"sentences": len(block), "mentions": mentions})
        write_conll(_sentences(data, DEVEL_FILE), out / COORDINATOR_FOLDER / DEVEL_FILE)
        write_conll(_sentences(data, TEST_FILE), out / TEST_FOLDER / TEST_FILE)
        (out / SUMMARY_FILE).write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")

    def site_size(self, folder: Path) -> int:
        return len(_sentences(folder, TRAIN_FILE))

    def evaluation_data(self, split: Path) -> tuple[Path | None, Path | None]:
        devel = split / COORDINATOR_FOLDER / DEVEL_FILE
        test = split / TEST_FOLDER / TEST_FILE
        return (devel if devel.is_file() else None, test if test.is_file() else None)

    def write_model(
        self,
        out: Path,
        settings: FederatedSettings,
        spec: Mapping[str, Any],
        arrays: list[NDArray[Any]],
        lineage: dict[str, Any],
        training_data: str,
        metrics: dict[str, float],
    ) -> ModelCard:
        from insightray.federated.site import set_arrays, shared_keys
        from insightray.training.ner.trainer import save_ner_model

        tagger = self._tagger(settings, spec)
        set_arrays(tagger.model, shared_keys(tagger.model), arrays)
        card = dataclasses.replace(
            tagger.card,
            version="0.1.0",
            lineage=Lineage("federated", None, settings=lineage, data=training_data),
            training_data=training_data,
            metrics={k: v for k, v in metrics.items() if not math.isnan(v)},
            notes=(
                f"Federated {settings.strategy} over {lineage['sites']} sites, "
                f"{settings.rounds} rounds of {settings.local_epochs} local epoch(s); the word "
                "vocabulary is the coordinator's development set (site words outside it are "
                "unknown words). Research use only."
            ),
        )
        tagger.model.eval()
        return save_ner_model(dataclasses.replace(tagger, card=card), out)

    def test_metrics(self, report: dict[str, Any]) -> dict[str, float]:
        return {f"test_{key}": float(report[key]) for key in ("precision", "recall", "f1")}

    def describe(self, report: dict[str, Any]) -> str:
        return (
            f"test entity F1 {report['f1']:.4f} "
            f"(precision {report['precision']:.4f}, recall {report['recall']:.4f})"
        )
