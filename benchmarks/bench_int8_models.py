"""INT8 fracture classifier, NER tagger and disease classifier against their float parents.

Fracture: the bundled classifier is exported to fp32 ONNX and quantised with
`insightray optimize fracture --int8` (static QDQ, per-channel int8 weights, calibrated on the
first N images of its own group-aware training split); both graphs run on ONNX Runtime. Speed:
the network forward at batch 1 on the card's 160 px input, 2 intra-op threads, median of R
interleaved runs. Accuracy: AUC on the validation split (never calibrated on) with a paired
bootstrap 95 % interval of the difference, resampling source-image groups.

NER: the bundled BiLSTM-CRF and its `optimize ner --int8` copy (PyTorch dynamic int8 of the
LSTM and linear layers) tag NCBI-disease devel and test; sentences/s (median of R interleaved
passes) and exact-span entity F1, each with a sentence-bootstrap 95 % interval, and the paired
interval of the F1 difference.

Disease classifier: the bundled MiniLM `textcls-symptom2disease-minilm` in PyTorch (what ships),
the same network exported to ONNX Runtime with its BERT fusions in fp32, and its
`optimize textcls --int8` copy (ONNX Runtime dynamic int8); latency per text at batch 1 (median
of R interleaved runs over the test texts) and texts/s in batches of 32; accuracy and macro-F1
on the card's held-out test split (the split it was never trained or tuned on; no choice is
made on it here) with a text-bootstrap 95 % interval, and the paired interval of the INT8 -
PyTorch difference.

Usage:
    python benchmarks/bench_int8_models.py [--calibration-images 64] [--runs 200] [--passes 3]
        [--parts fracture ner textcls]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "2")

import numpy as np
import torch

from insightray.config import data_root
from insightray.engine import load_predictor
from insightray.engine.backends import OnnxBackend
from insightray.engine.classification import FracturePredictor
from insightray.engine.classification_onnx import OnnxFracturePredictor
from insightray.engine.export import export_onnx
from insightray.engine.ner import load_ner_model, predict_tags
from insightray.engine.ner_int8 import quantize_ner
from insightray.engine.quantize import quantize_classifier
from insightray.engine.textcls_int8 import quantize_text_classifier
from insightray.imaging import read_image
from insightray.models.catalog import default_model, resolve_card
from insightray.models.text.bert_classifier import ONNX_INT8_FILE
from insightray.training.fracture.config import FractureTrainConfig
from insightray.training.fracture.dataset import load_fracture_items, split_by_group
from insightray.training.metrics.entities import entity_scores
from insightray.training.metrics.roc import bootstrap_auc_ci, bootstrap_auc_difference, roc_auc
from insightray.training.ner.conll import read_conll

FRACTURE = data_root() / "fracture" / "bone_fracture_roboflow"
NCBI = data_root() / "text" / "ner" / "ncbi_disease"
SYMPTOM2DISEASE = data_root() / "text/classification/symptom2disease/Symptom2Disease.csv"


def interleaved_ms(calls: dict[str, Callable[[], object]], runs: int) -> dict[str, float]:
    """Median milliseconds per call, the calls alternating so load hits each alike."""
    times: dict[str, list[float]] = {name: [] for name in calls}
    for call in calls.values():
        call()  # warm-up
    for _ in range(runs):
        for name, call in calls.items():
            started = time.perf_counter()
            call()
            times[name].append((time.perf_counter() - started) * 1000)
    return {name: statistics.median(values) for name, values in times.items()}


def fracture(args: argparse.Namespace, scratch: Path) -> None:
    """Fracture fp32 ONNX against INT8: latency and validation AUC."""
    config = FractureTrainConfig()
    splits = split_by_group(load_fracture_items(FRACTURE), val_fraction=config.val_fraction,
                            test_fraction=config.test_fraction, seed=config.split_seed)  # fmt: skip
    calibration = [item.path for item in splits.train[: args.calibration_images]]
    parent = load_predictor(task="classification")
    assert isinstance(parent, FracturePredictor)
    float_path = export_onnx(parent.model, scratch / "fp32.onnx", parent.card.input_size)
    started = time.perf_counter()
    card = quantize_classifier(None, calibration, scratch / "int8", args.method)
    seconds = time.perf_counter() - started
    threads = args.threads
    models = {
        "fp32 ORT": OnnxFracturePredictor(OnnxBackend(float_path, threads), parent.card),
        "int8 ORT": OnnxFracturePredictor(
            OnnxBackend(scratch / "int8" / (card.weights_file or ""), threads), card
        ),
    }
    batch = parent.prepared_batch([read_image(splits.val[0].path).pixels])
    speed = interleaved_ms({n: (lambda m=m: m.logits(batch)) for n, m in models.items()}, args.runs)
    pixels = [read_image(item.path).pixels for item in splits.val]
    labels = [item.label for item in splits.val]
    groups = [item.group for item in splits.val]
    logits = {name: m.predict_logits(pixels) for name, m in models.items()}
    print(f"fracture: quantised in {seconds:.1f} s on {len(calibration)} training images "
          f"({args.method}); validation {len(labels)} images, {sum(labels)} fractured, "
          f"{len(set(groups))} groups; batch 1, {threads} threads, {args.runs} runs")  # fmt: skip
    for name, values in logits.items():
        low, high = bootstrap_auc_ci(labels, values, groups=groups, resamples=args.resamples)
        print(f"  {name}: {speed[name]:.2f} ms, val AUC {roc_auc(labels, values):.4f} "
              f"[{low:.4f}, {high:.4f}]")  # fmt: skip
    difference, low, high = bootstrap_auc_difference(
        labels, logits["int8 ORT"], logits["fp32 ORT"], groups=groups, resamples=args.resamples
    )
    agree = np.mean((logits["int8 ORT"] > 0) == (logits["fp32 ORT"] > 0))
    print(f"  int8 vs fp32: {speed['fp32 ORT'] / speed['int8 ORT']:.2f}x faster; AUC difference "
          f"{difference:+.4f} [{low:+.4f}, {high:+.4f}]; max |logit difference| "
          f"{np.abs(logits['int8 ORT'] - logits['fp32 ORT']).max():.3f}; "
          f"same side of logit 0 on {agree:.3f}")  # fmt: skip


def sentence_counts(gold: list[list[str]], tags: list[list[str]]) -> np.ndarray:
    """Per sentence: gold, predicted and correct entity counts."""
    scores = (entity_scores([g], [p]) for g, p in zip(gold, tags, strict=True))
    return np.array([[s.gold, s.predicted, s.correct] for s in scores])


def f1_with_intervals(
    gold: list[list[str]], found: dict[str, list[list[str]]], resamples: int
) -> dict[str, tuple[float, float, float]]:
    """Entity F1 per model with a sentence-bootstrap interval, and the paired difference."""
    counts = {name: sentence_counts(gold, tags) for name, tags in found.items()}

    def f1(rows: np.ndarray) -> float:
        gold_n, predicted_n, correct_n = rows.sum(axis=0)
        return float(2 * correct_n / max(gold_n + predicted_n, 1))

    rng = np.random.default_rng(0)
    samples: dict[str, list[float]] = {name: [] for name in [*counts, "difference"]}
    names = list(counts)
    for _ in range(resamples):
        index = rng.integers(0, len(gold), len(gold))
        values = [f1(counts[name][index]) for name in names]
        for name, value in zip(names, values, strict=True):
            samples[name].append(value)
        samples["difference"].append(values[1] - values[0])
    point = {name: f1(rows) for name, rows in counts.items()}
    point["difference"] = point[names[1]] - point[names[0]]
    return {
        name: (point[name], *np.percentile(values, [2.5, 97.5])) for name, values in samples.items()
    }


def ner(args: argparse.Namespace, scratch: Path) -> None:
    """NER float against dynamic INT8: sentences/s and entity F1 on devel and test."""
    quantize_ner(None, scratch / "ner-int8")
    parent = resolve_card(None, default=default_model("ner"))
    taggers = {"float": load_ner_model(parent), "int8": load_ner_model(scratch / "ner-int8")}
    for split in ("devel", "test"):
        sentences = read_conll(NCBI / f"{split}.tsv")
        words = [list(s.words) for s in sentences]
        gold = [list(s.tags) for s in sentences]
        found = {name: predict_tags(tagger, words) for name, tagger in taggers.items()}
        passes = interleaved_ms(
            {n: (lambda t=t, w=words: predict_tags(t, w)) for n, t in taggers.items()}, args.passes
        )
        same = np.mean([a == b for a, b in zip(found["float"], found["int8"], strict=True)])
        scores = f1_with_intervals(gold, found, args.resamples)
        print(f"ner {split} ({len(words)} sentences, {torch.get_num_threads()} torch threads, "
              f"median of {args.passes} interleaved passes); identical tags on {same:.3f} of "
              "sentences")  # fmt: skip
        for name in taggers:
            rate = len(words) / (passes[name] / 1000)
            f1, low, high = scores[name]
            print(f"  {name}: {rate:.0f} sentences/s, entity F1 {f1:.4f} [{low:.4f}, {high:.4f}]")
        difference, low, high = scores["difference"]
        print(f"  int8 vs float: {passes['float'] / passes['int8']:.2f}x the speed; F1 difference "
              f"{difference:+.4f} [{low:+.4f}, {high:+.4f}]")  # fmt: skip


def macro_f1(gold: np.ndarray, predicted: np.ndarray, classes: int) -> float:
    """Mean over classes present in ``gold`` or ``predicted`` of the per-class F1."""
    scores = []
    for label in range(classes):
        true, chosen = gold == label, predicted == label
        if true.any() or chosen.any():
            scores.append(2 * (true & chosen).sum() / (true.sum() + chosen.sum()))
    return float(np.mean(scores))


def textcls(args: argparse.Namespace, scratch: Path) -> None:
    """Disease classifier: PyTorch fp32 against ONNX Runtime fp32 and dynamic INT8."""
    from insightray.models.text.bert_classifier import load_classifier
    from insightray.models.text.bert_onnx import bert_session, export_bert
    from insightray.training.textcls.data import load_text_csv
    from insightray.training.textcls.evaluate import split_for_card

    started = time.perf_counter()
    quantize_text_classifier(None, scratch / "textcls-int8")
    seconds = time.perf_counter() - started
    parent = load_classifier(default_model("text-classification"))
    network = parent.torch_model()
    network.encoder.set_attn_implementation("eager")
    export_bert(network, network.encoder.config.to_dict(), scratch / "textcls-fp32.onnx",
                "logits", {0: "batch"})  # fmt: skip
    fp32 = dataclasses.replace(
        parent, model=None, session=bert_session(scratch / "textcls-fp32.onnx", args.threads)
    )
    int8 = load_classifier(scratch / "textcls-int8")
    int8.session = bert_session(scratch / "textcls-int8" / ONNX_INT8_FILE, args.threads)
    models = {"PyTorch fp32 (ships)": parent, "ORT fp32 fused": fp32, "ORT int8": int8}
    split = parent.card.preprocessing.extra["split"]
    data = load_text_csv(SYMPTOM2DISEASE, split["text_column"], split["label_column"])
    test = split_for_card(data, parent.card, "test").with_labels(parent.card.labels)
    texts, gold = list(test.texts), test.targets
    single = interleaved_ms(
        {n: (lambda m=m: [m.predict_proba([t]) for t in texts[:40]]) for n, m in models.items()},
        args.passes,
    )
    batched = interleaved_ms({n: (lambda m=m: m.predict_proba(texts)) for n, m in models.items()},
                             args.passes)  # fmt: skip
    chosen = {name: m.predict_proba(texts).argmax(axis=1) for name, m in models.items()}
    classes = len(parent.card.labels)
    rng = np.random.default_rng(0)
    draws = [rng.integers(0, len(texts), len(texts)) for _ in range(args.resamples)]

    def interval(values: list[float]) -> str:
        low, high = np.percentile(values, [2.5, 97.5])
        return f"[{low:+.4f}, {high:+.4f}]" if min(values) < 0 else f"[{low:.4f}, {high:.4f}]"

    print(
        f"textcls: quantised in {seconds:.1f} s; test split {len(texts)} texts, {classes} "
        f"classes; {args.threads} threads; median of {args.passes} interleaved passes"
    )
    base = chosen["PyTorch fp32 (ships)"]
    for name, predicted in chosen.items():
        accuracy = [float((predicted[i] == gold[i]).mean()) for i in draws]
        f1 = [macro_f1(gold[i], predicted[i], classes) for i in draws]
        line = (f"  {name}: {single[name] / 40:.1f} ms/text at batch 1, "
                f"{len(texts) / (batched[name] / 1000):.0f} texts/s in batches of 32; accuracy "
                f"{(predicted == gold).mean():.4f} {interval(accuracy)}, macro-F1 "
                f"{macro_f1(gold, predicted, classes):.4f} {interval(f1)}")  # fmt: skip
        if predicted is not base:
            difference = [macro_f1(gold[i], predicted[i], classes)
                          - macro_f1(gold[i], base[i], classes) for i in draws]  # fmt: skip
            point = macro_f1(gold, predicted, classes) - macro_f1(gold, base, classes)
            line += (f"; vs PyTorch: {single['PyTorch fp32 (ships)'] / single[name]:.2f}x at "
                     f"batch 1, {batched['PyTorch fp32 (ships)'] / batched[name]:.2f}x batched, "
                     f"macro-F1 {point:+.4f} {interval(difference)}, same label on "
                     f"{(predicted == base).mean():.3f}")  # fmt: skip
        print(line)


PARTS = {"fracture": fracture, "ner": ner, "textcls": textcls}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calibration-images", type=int, default=64)
    parser.add_argument("--method", default="percentile")
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--passes", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--resamples", type=int, default=2000)
    parser.add_argument("--parts", nargs="+", choices=list(PARTS), default=list(PARTS))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    flags = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    wanted = [f for f in flags.split() if f.startswith(("avx512_vnni", "avx_vnni", "amx", "avx2"))]
    load = os.getloadavg()[0]
    print(f"machine: {os.cpu_count()} CPUs, {' '.join(sorted(set(wanted)))}; load {load:.1f}")
    with tempfile.TemporaryDirectory() as scratch:
        for part in args.parts:
            PARTS[part](args, Path(scratch))
    print(f"load average at the end: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
