"""Task runners built from model cards, and the host that batches and caches their work.

A registered version (:class:`~insightray.serving.hosting.rollout.ModelEntry`) becomes a
runner by its card's task, each built with :func:`insightray.engine.load_predictor`:
detection (served as ``cxr``) with EigenCAM, fracture classification with Grad-CAM, ``ner`` and
``text-classification`` inside :class:`~insightray.nlp.pipeline.ClinicalPipeline`, and the
intent model (served as ``assistant``) inside :class:`~insightray.assistant.chat.Assistant`.
A new model version needs no new code: its card says what it is. :class:`ModelLoader` loads
each version once and can be shared by several apps (tests load real models once per
session). :class:`ModelHost` runs the image models through a
:class:`~insightray.serving.hosting.batching.DynamicBatcher` per version, every other call in
its thread pool, never on the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch
from numpy.typing import NDArray

from insightray.engine import load_predictor
from insightray.errors import ConfigError, InsightRayError, ServiceUnavailableError
from insightray.explain.eigencam import eigencam_heatmap
from insightray.explain.gradcam import gradcam_heatmap
from insightray.imaging import LoadedImage
from insightray.models.catalog import find_task
from insightray.monitoring.guard import Observation, OodGuard
from insightray.monitoring.profile import output_features
from insightray.serving.hosting.batching import DynamicBatcher
from insightray.serving.hosting.cache import CacheKey, ResultCache
from insightray.serving.hosting.drift import DriftMonitor
from insightray.serving.hosting.index_preparation import IndexPreparation
from insightray.serving.hosting.metrics import ServiceMetrics
from insightray.serving.hosting.rollout import ModelEntry

__all__ = [
    "AssistantRunner",
    "DetectionRunner",
    "FractureRunner",
    "ModelHost",
    "ModelLoader",
    "TextRunner",
    "configure_torch_threads",
    "runner_key",
]

T = TypeVar("T")


def configure_torch_threads(threads: int) -> None:
    """Set torch's intra-op threads once per process (inter-op only before any parallel work).

    On a 2-core machine one or two threads per inference keep the event loop responsive; on a
    large server more threads per batch pay off. The service passes ``settings.torch_threads``.
    """
    torch.set_num_threads(max(1, threads))
    # RuntimeError: already set, or parallel work already ran in this process
    with contextlib.suppress(RuntimeError):
        torch.set_num_interop_threads(1)


def runner_key(entry: ModelEntry) -> str:
    """``name:version@<weights sha256 prefix>``: a runner per version and weights."""
    return f"{entry.key}@{entry.weights_sha256[:12]}"


#: Detector boxes down to this score are kept as candidates beside the findings, so the
#: viewer's threshold slider can show weaker ones on request.
CANDIDATE_FLOOR = 0.01


class DetectionRunner:
    """Chest X-ray detection with :func:`insightray.engine.load_predictor`, and its EigenCAM.

    It detects down to :data:`CANDIDATE_FLOOR`; :meth:`operating` splits a result at the
    card's operating point (``threshold``) into the findings and the weaker candidates.
    """

    #: What :meth:`heatmap` computes (the result's ``heatmap_method``).
    heatmap_method = "eigencam"

    def __init__(self, entry: ModelEntry) -> None:
        self.entry = entry
        self.predictor = load_predictor(entry.card_path, task="detection")
        self.guard = OodGuard.for_predictor(self.predictor, entry.card_path)
        self.threshold = self.predictor.conf_threshold  # the card's operating point
        self.predictor.conf_threshold = min(CANDIDATE_FLOOR, self.threshold)

    def operating(self, result: Any) -> tuple[Any, list[Any]]:
        """``result`` at the operating point (the CLI's boxes) and the candidates below it.

        NMS only lets a box suppress weaker ones, so the boxes above the operating point are
        the same as a run at that threshold.
        """
        kept = [d for d in result.detections if d.score > self.threshold]
        weaker = [d for d in result.detections if d.score <= self.threshold]
        return dataclasses.replace(result, detections=kept), weaker

    def outputs(self, result: Any) -> dict[str, float]:
        """A result's output features at the operating point (as its profile measured)."""
        return output_features(self.operating(result)[0])

    def predict(
        self, images: Sequence[LoadedImage], observe: Callable[[Observation], None] | None = None
    ) -> list[Any]:
        """One :class:`~insightray.engine.DetectionResult` per image, as one batch, each with
        the out-of-distribution guard's ``warnings`` and ``ood_score`` (``observe``: see
        :meth:`OodGuard.run <insightray.monitoring.guard.OodGuard.run>`)."""

        def run() -> list[Any]:
            return self.predictor.predict_arrays(
                [image.pixels for image in images],
                [image.meta.pixel_spacing for image in images],
                ["study"] * len(images),
                batch_size=max(1, len(images)),
            )

        return run() if self.guard is None else self.guard.run(run, images, observe)

    def heatmap(self, image: LoadedImage) -> NDArray[np.float32] | None:
        """EigenCAM heat in ``[0, 1]`` at the image's size; ``None`` for a detector that
        cannot be explained (ONNX weights, an ensemble)."""
        try:
            heat = eigencam_heatmap(self.predictor, image.pixels)
        except ConfigError:
            return None
        return np.asarray(heat, dtype=np.float32)


class FractureRunner:
    """Fracture classification and its Grad-CAM heat map (the fracture engine's predictor)."""

    #: What :meth:`heatmap` computes (the result's ``heatmap_method``).
    heatmap_method = "gradcam"

    def __init__(self, entry: ModelEntry) -> None:
        self.entry = entry
        self.predictor = load_predictor(entry.card_path, task="classification")
        self.guard = OodGuard.for_predictor(self.predictor, entry.card_path)
        self._lock = threading.Lock()  # Grad-CAM hooks the model: one use at a time

    def outputs(self, result: Any) -> dict[str, float]:
        """A result's output features (its fracture probability)."""
        return output_features(result)

    def predict(
        self, images: Sequence[LoadedImage], observe: Callable[[Observation], None] | None = None
    ) -> list[Any]:
        """One fracture result (``probability``, ``label``, ``threshold``) per image."""

        def run() -> list[Any]:
            return list(self.predictor.predict_arrays([image.pixels for image in images]))

        with self._lock:
            return run() if self.guard is None else self.guard.run(run, images, observe)

    def heatmap(self, image: LoadedImage) -> NDArray[np.float32] | None:
        """Grad-CAM heat in ``[0, 1]`` at the image's size; ``None`` for a classifier that
        cannot be explained (an ONNX or INT8 graph, an ensemble)."""
        try:
            with self._lock:
                heat = gradcam_heatmap(self.predictor, image.pixels)
        except ConfigError:
            return None
        return np.asarray(heat, dtype=np.float32)


class TextRunner:
    """The clinical text pipeline with one NER and one disease-classifier version."""

    def __init__(self, ner: ModelEntry, classifier: ModelEntry) -> None:
        from insightray.nlp.classifier import DiseaseClassifier
        from insightray.nlp.ner import NerTagger
        from insightray.nlp.pipeline import ClinicalPipeline

        self.entries = (ner, classifier)
        tagger: object = load_predictor(ner.card_path, task="ner")
        ranker: object = load_predictor(classifier.card_path, task="text-classification")
        if not isinstance(tagger, NerTagger) or not isinstance(ranker, DiseaseClassifier):
            raise ServiceUnavailableError(
                f"models {ner.name} and {classifier.name}",
                "the clinical pipeline needs a BiLSTM-CRF tagger and a BERT classifier",
                "register versions of those kinds",
            )
        self.pipeline = ClinicalPipeline(extractor=tagger, classifier=ranker)
        self._lock = threading.Lock()  # spaCy pipelines are not documented as thread-safe

    def analyze(
        self, text: str, explain: bool = False, method: str = "integrated-gradients"
    ) -> dict[str, Any]:
        """``ClinicalResult.to_dict()`` of ``text`` (with the words weighed by ``method`` if
        ``explain``)."""
        with self._lock:
            return self.pipeline.analyze(text, explain=explain, explain_method=method).to_dict()


class AssistantRunner:
    """The assistant with this intent-model version and the knowledge index in ``index_dir``.

    Raises:
        ServiceUnavailableError: No knowledge index has been built.
    """

    def __init__(self, entry: ModelEntry, index_dir: Path) -> None:
        from insightray.assistant.chat import Assistant, AssistantConfig
        from insightray.assistant.index import load_index

        if not (index_dir / "manifest.json").is_file():
            raise ServiceUnavailableError(
                "assistant",
                "no knowledge index has been built",
                "run `insightray index build` with the same INSIGHTRAY_HOME, then retry",
            )
        self.entry = entry
        config = AssistantConfig(index_dir=index_dir, intent_model=entry.card_path.parent)
        self.assistant = Assistant(config, index=load_index(index_dir))
        self._lock = threading.Lock()  # conversation state is shared

    def ask(
        self, question: str, conversation_id: str | None, conversations: Any = None
    ) -> dict[str, Any]:
        """``AssistantAnswer.to_dict()`` for the question (``conversations``: where the
        dialogue state lives, a :class:`~insightray.assistant.state.ConversationStore`)."""
        with self._lock:
            return self.assistant.ask(question, conversation_id, conversations).to_dict()


@dataclass
class ModelLoader:
    """Loads each model version once (thread-safe) and keeps it; shareable between apps.

    Attributes:
        index_dir: The assistant's knowledge index.
        preparation: The background build of that index on first start, if any.
        states: ``key -> "loading" | "ready" | "failed: <reason>"``.
    """

    index_dir: Path
    preparation: IndexPreparation | None = None
    states: dict[str, str] = field(default_factory=dict)
    _loaded: dict[str, Any] = field(default_factory=dict)
    _locks: dict[str, threading.Lock] = field(default_factory=dict)
    _guard: threading.Lock = field(default_factory=threading.Lock)

    def image_runner(self, entry: ModelEntry) -> DetectionRunner | FractureRunner:
        """The detection or fracture runner of a version."""
        task = find_task(entry.task).name
        if task == "detection":
            return self._load(runner_key(entry), lambda: DetectionRunner(entry))
        if task == "classification":
            return self._load(runner_key(entry), lambda: FractureRunner(entry))
        raise ServiceUnavailableError(
            f"model {entry.name}", "it is not an image model", "see /v1/models"
        )

    def text_runner(self, ner: ModelEntry, classifier: ModelEntry) -> TextRunner:
        """The text pipeline of a pair of versions."""
        key = f"{runner_key(ner)}+{runner_key(classifier)}"
        return self._load(key, lambda: TextRunner(ner, classifier))

    def assistant_runner(self, entry: ModelEntry) -> AssistantRunner:
        """The assistant of an intent-model version.

        Raises:
            IndexPreparingError: The index is being built (with how far it is).
        """
        if self.preparation is not None and not (self.index_dir / "manifest.json").is_file():
            self.preparation.check()
        return self._load(runner_key(entry), lambda: AssistantRunner(entry, self.index_dir))

    def ready(self, key: str) -> bool:
        """Whether the runner under ``key`` is loaded."""
        return self.states.get(key) == "ready"

    def _load(self, key: str, build: Callable[[], T]) -> T:
        with self._guard:
            lock = self._locks.setdefault(key, threading.Lock())
        with lock:
            if key not in self._loaded:
                self.states[key] = "loading"
                try:
                    self._loaded[key] = build()
                except InsightRayError as error:
                    self.states[key] = f"failed: {error}"
                    if isinstance(error, ServiceUnavailableError):
                        raise
                    raise ServiceUnavailableError(
                        key, f"the model cannot be loaded ({error})", "check its files"
                    ) from error
                self.states[key] = "ready"
            runner: T = self._loaded[key]
            return runner


class ModelHost:
    """Runs the models of one app: batched image inference, a result cache, a thread pool.

    Args:
        loader: Where runners come from (shared between apps in tests).
        metrics: The app's metrics.
        cache: The result cache.
        threads: Inference threads (batches of different models run side by side).
        batch_max_size: Most images per batch.
        batch_max_delay_ms: Longest wait for a batch to fill.
        drift: The rolling drift windows the guarded image models feed; ``None``: none.
    """

    def __init__(
        self,
        loader: ModelLoader,
        metrics: ServiceMetrics,
        cache: ResultCache[Any],
        *,
        threads: int,
        batch_max_size: int,
        batch_max_delay_ms: float,
        drift: DriftMonitor | None = None,
    ) -> None:
        self.loader = loader
        self.drift = drift
        self.metrics = metrics
        self.cache = cache
        self.executor = ThreadPoolExecutor(max(1, threads), thread_name_prefix="inference")
        self.batch_max_size = batch_max_size
        self.batch_max_delay_ms = batch_max_delay_ms
        self.batchers: dict[str, DynamicBatcher[LoadedImage, Any]] = {}
        self.warm_up_done = threading.Event()

    async def run(self, function: Callable[..., T], *args: Any) -> T:
        """Run a blocking call in the inference pool."""
        return await asyncio.get_running_loop().run_in_executor(self.executor, function, *args)

    async def image_runner(self, entry: ModelEntry) -> DetectionRunner | FractureRunner:
        """The runner of an image model version (loaded in a helper thread on first use)."""
        return await asyncio.to_thread(self.loader.image_runner, entry)

    async def predict_image(
        self, entry: ModelEntry, image: LoadedImage, input_sha256: str, *, shadow: bool = False
    ) -> tuple[Any, bool]:
        """The model's output for one image, batched with concurrent requests.

        Returns:
            The output and whether it came from the cache.
        """
        key = CacheKey(input_sha256, entry.task, entry.name, entry.version)
        cached = self.cache.get(key)
        self.metrics.observe_cache(entry.name, entry.version, cached is not None)
        if cached is not None:
            return cached, True
        runner = await self.image_runner(entry)
        started = time.perf_counter()
        output = await self._batcher(entry, runner).submit(image)
        seconds = time.perf_counter() - started
        self.metrics.observe_prediction(
            entry.task, entry.name, entry.version, seconds, shadow=shadow
        )
        self.cache.put(key, output)
        return output, False

    def warm_up(self, load: Sequence[Callable[[], Any]]) -> None:
        """Load models in a background thread; :attr:`warm_up_done` is set when all tried."""

        def work() -> None:
            for step in load:
                with contextlib.suppress(InsightRayError):  # kept in loader.states; 503 then
                    step()
            self.warm_up_done.set()

        threading.Thread(target=work, name="model-warm-up", daemon=True).start()

    async def close(self) -> None:
        """Stop the batchers and the pool (queued requests fail with 503)."""
        for batcher in self.batchers.values():
            await batcher.close()
        self.executor.shutdown(wait=False, cancel_futures=True)
        if self.drift is not None:
            self.drift.close()

    def _batcher(
        self, entry: ModelEntry, runner: DetectionRunner | FractureRunner
    ) -> DynamicBatcher[LoadedImage, Any]:
        batcher = self.batchers.get(entry.key)
        if batcher is None:
            name, version = entry.name, entry.version
            observe = None
            if self.drift is not None:
                observe = self.drift.observer(entry, runner.guard, runner.outputs)
            batcher = DynamicBatcher(
                runner.predict
                if observe is None
                else functools.partial(runner.predict, observe=observe),
                self.executor,
                self.batch_max_size,
                self.batch_max_delay_ms,
                on_batch=self.metrics.batch_size.labels(name, version).observe,
                on_queue=self.metrics.queue_depth.labels(name, version).set,
            )
            self.batchers[entry.key] = batcher
        return batcher
