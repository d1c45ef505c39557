"""The medical assistant on real held-out questions: retrieval, intents, latency, memory.

* Retrieval: every distinct TREC 2017 LiveQA training question (subject + message, messy
  consumer text; never used to build or tune the retriever) against the MedQuAD index.
  A hit is relevant when its MedQuAD focus (or a synonym) names the question's annotated
  focus (word sets, one inside the other, generic words like "disease" aside). Recall@5 and
  MRR@10 for dense, BM25, their reciprocal-rank fusion, and the fusion with the
  focus / question-type re-ranking (the default), on all questions and on the answerable
  ones (some MedQuAD document has the focus).
* Intents: the bundled head on its held-out split (LiveQA questions and MedQuAD documents
  chosen by hash, see ``insightray.training.intents``).
* Latency: ``Assistant.ask`` per LiveQA question after warm-up, p50 / p95, on CPU.
* Index: the build time recorded in the manifest, load time, and the process RSS.

Usage:
    python benchmarks/bench_assistant.py [--index DIR] [--threads 1] [--latency 100]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

THREADS_DEFAULT = 1


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


#: Questions outside the knowledge (written for this benchmark): the assistant should say
#: "I don't know" to them.
OFF_TOPIC = (
    "How do I replace the brake pads on my car?",
    "What is the capital of Australia?",
    "Who won the football world cup in 2014?",
    "How do I bake sourdough bread?",
    "What is the best way to learn Python programming?",
    "How much does a flight from Paris to Rome cost?",
    "Can you recommend a good science fiction novel?",
    "How do I fix a leaking kitchen tap?",
    "What will the weather be like tomorrow?",
    "How do I reset my router password?",
    "What is the square root of 144?",
    "When did the Roman Empire fall?",
    "How do I get a stain out of a white shirt?",
    "Which phone has the best camera?",
    "How do I file my taxes online?",
    "What is a good name for a golden retriever puppy?",
    "How can I improve my chess openings?",
    "How long should I boil an egg?",
    "What's the difference between stocks and bonds?",
    "How do I plant tomatoes in my garden?",
    "Why is the sky blue?",
    "How do I change a flat tyre on a bike?",
    "What time zone is Tokyo in?",
    "How do I write a cover letter for a job?",
    "What does HTTP 404 mean?",
    "How many players are on a basketball team?",
    "What is the plot of Hamlet?",
    "How do I paint a room quickly?",
    "What is the speed of light?",
    "How do I make cold brew coffee?",
)

GENERIC = {"diseas", "syndrom", "disorder", "type", "condition", "problem", "infection"}


def _focus_terms(text: str) -> frozenset[str]:
    from insightray.assistant.text import terms

    return frozenset(terms(text))


def _matches(wanted: frozenset[str], names: Sequence[frozenset[str]]) -> bool:
    """The annotated focus and a document name agree: equal word sets, or one inside the
    other once generic words are set aside."""
    core = wanted - GENERIC
    for name in names:
        if not name or not wanted:
            continue
        if name == wanted:
            return True
        other = name - GENERIC
        if core and other and (core <= other or other <= core):
            return True
    return False


def retrieval(
    index: Any,
    embedder: Any,
    questions: Sequence[Any],
    *,
    intent_embedder: Any = None,
    match_qtype: bool = False,
) -> list[dict[str, Any]]:
    """Per-system scores of ``questions`` on ``index``, questions encoded by ``embedder``.

    Args:
        intent_embedder: Encodes questions for the intent head (default ``embedder``); the
            assistant keeps the packaged encoder here when retrieval uses a fine-tuned one.
        match_qtype: A hit must also have the sub-question's question type (MedQuAD
            questions, whose type is known exactly).
    """
    from insightray.assistant.chat import AssistantConfig, retrieval_confidence
    from insightray.assistant.retrieval import RetrieverConfig

    by_focus: dict[str, list[frozenset[str]]] = {}
    for passage in index.passages:
        names = (passage.focus, *passage.synonyms)
        by_focus.setdefault(passage.focus, [_focus_terms(n) for n in names])
    systems = {
        "dense": RetrieverConfig(mode="dense", rerank=False),
        "BM25": RetrieverConfig(mode="bm25", rerank=False),
        "hybrid RRF": RetrieverConfig(mode="hybrid", rerank=False),
        "hybrid RRF + focus re-rank": RetrieverConfig(),
        "hybrid RRF + focus and question-type re-rank (assistant)": RetrieverConfig(),
    }
    from insightray.assistant.intents import IntentClassifier, medquad_qtypes

    classifier = IntentClassifier.load()
    wanted = [[_focus_terms(s.focus) for s in q.subquestions] for q in questions]
    answerable = [
        any(_matches(w, names) for w in ws for names in by_focus.values()) for ws in wanted
    ]
    vectors = embedder.encode([q.text for q in questions])
    intent_vectors = vectors
    if intent_embedder is not None and intent_embedder is not embedder:
        intent_vectors = intent_embedder.encode([q.text for q in questions])
    min_confidence = AssistantConfig().min_confidence
    rows = []
    for name, config in systems.items():
        retriever = index.retriever(embedder, config)
        recall, reciprocal, seconds, confident = [], [], [], []
        for question, ws, vector, intent_vector in zip(
            questions, wanted, vectors, intent_vectors, strict=True
        ):
            started = time.perf_counter()
            qtypes: tuple[str, ...] = ()
            if "question-type" in name:
                qtypes = medquad_qtypes(classifier.predict(intent_vector).qtype or "")
            hits = retriever.search(question.text, 10, query_vector=vector, qtypes=qtypes)
            seconds.append(time.perf_counter() - started)
            ranks = [
                h.rank
                for h in hits
                if any(
                    _matches(w, [_focus_terms(n) for n in (h.passage.focus, *h.passage.synonyms)])
                    and (not match_qtype or h.passage.qtype == sub.qtype)
                    for w, sub in zip(ws, question.subquestions, strict=True)
                )
            ]
            recall.append(bool(ranks) and ranks[0] <= 5)
            reciprocal.append(1.0 / ranks[0] if ranks else 0.0)
            confident.append(float(retrieval_confidence(hits) >= min_confidence))
        keep = [i for i, ok in enumerate(answerable) if ok]
        rows.append(
            {
                "system": name,
                "recall@5": statistics.fmean(recall),
                "mrr@10": statistics.fmean(reciprocal),
                "recall@5 answerable": statistics.fmean(recall[i] for i in keep),
                "mrr@10 answerable": statistics.fmean(reciprocal[i] for i in keep),
                "search ms p50": statistics.median(seconds) * 1000,
                "questions": len(questions),
                "answerable": len(keep),
                "hits@5": [float(hit) for hit in recall],  # per question, for paired tests
                "reciprocal ranks": reciprocal,
                "answerable mask": answerable,
                "confident": confident,  # the assistant would answer (not "I don't know")
            }
        )
    return rows


def intents(embedder: Any) -> dict[str, dict[str, float]]:
    import numpy as np

    from insightray.assistant.intents import IntentClassifier
    from insightray.training.intents.trainer import evaluate_intents, intent_examples

    classifier = IntentClassifier.load()
    examples = intent_examples()  # the training part only feeds the majority baseline
    held = [i for i, e in enumerate(examples) if e.held_out]
    vectors = np.zeros((len(examples), embedder.dim), dtype=np.float32)
    vectors[held] = embedder.encode([examples[i].text for i in held])
    return {
        origin: evaluate_intents(classifier, examples, vectors, origin)
        for origin in ("liveqa", "medquad")
    }


def latency(index: Any, embedder: Any, questions: Sequence[str]) -> dict[str, float]:
    from insightray.assistant import Assistant, AssistantConfig

    assistant = Assistant(AssistantConfig(index_dir=index.folder), index=index, embedder=embedder)
    assistant.warm_up()
    for text in questions[:5]:
        assistant.ask(text)
    times = []
    for text in questions:
        started = time.perf_counter()
        assistant.ask(text)
        times.append((time.perf_counter() - started) * 1000)
    times.sort()
    refused = [assistant.ask(text).kind in ("dont_know", "out_of_scope") for text in OFF_TOPIC]
    answered = [assistant.ask(text).kind == "extractive" for text in questions]
    return {
        "off-topic refused": statistics.fmean(refused),
        "LiveQA answered": statistics.fmean(answered),
        "questions": len(times),
        "p50 ms": statistics.median(times),
        "p95 ms": times[int(0.95 * (len(times) - 1))],
        "mean ms": statistics.fmean(times),
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--index", type=Path, default=None, help="index folder (default home)")
    parser.add_argument("--threads", type=int, default=THREADS_DEFAULT)
    parser.add_argument("--latency", type=int, default=100, help="questions timed")
    parser.add_argument("--json", type=Path, default=None, help="also write results here")
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch

    torch.set_num_threads(args.threads)
    from insightray.assistant.embeddings import Embedder
    from insightray.assistant.index import default_index_dir, load_index
    from insightray.assistant.liveqa import read_liveqa

    folder = args.index or default_index_dir()
    loads = []
    for _ in range(3):
        started = time.perf_counter()
        index = load_index(folder)
        loads.append(time.perf_counter() - started)
    embedder = Embedder()
    embedder.encode_one("warm up")
    seen: set[str] = set()
    questions = [q for q in read_liveqa() if not (q.text in seen or seen.add(q.text))]
    results: dict[str, Any] = {
        "machine": f"{platform.machine()} {os.cpu_count()} cores, torch threads {args.threads}",
        "index": {
            "folder": str(folder),
            "pairs": index.manifest["pairs"],
            "passages": index.manifest["passages"],
            "dense": index.manifest["dense"],
            "build seconds": index.manifest["build_seconds"],
            "embedded at build": index.manifest["embedded"],
            "load seconds (median of 3)": statistics.median(loads),
        },
    }
    results["retrieval"] = retrieval(index, embedder, questions)
    results["intents"] = intents(embedder)
    results["latency"] = latency(index, embedder, [q.text for q in questions[: args.latency]])
    results["rss MB"] = _rss_mb()
    results["max rss MB"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    _print(results)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1), encoding="utf-8")
    return 0


def _print(results: dict[str, Any]) -> None:
    print(f"Machine: {results['machine']}")
    print(f"Index: {json.dumps(results['index'])}")
    print(
        "\n| retriever | Recall@5 | MRR@10 | Recall@5 (answerable) | MRR@10 (answerable) "
        "| search p50 ms |"
    )
    print("|---|---|---|---|---|---|")
    for row in results["retrieval"]:
        print(
            f"| {row['system']} | {row['recall@5']:.3f} | {row['mrr@10']:.3f} | "
            f"{row['recall@5 answerable']:.3f} | {row['mrr@10 answerable']:.3f} | "
            f"{row['search ms p50']:.1f} |"
        )
    first = results["retrieval"][0]
    print(f"({first['questions']} LiveQA questions, {first['answerable']} answerable)")
    print("\n| held-out intents | examples | qtype acc | secondary acc | primary acc | majority |")
    print("|---|---|---|---|---|---|")
    for origin, row in results["intents"].items():
        print(
            f"| {origin} | {row['examples']:.0f} | {row['qtype_accuracy']:.3f} | "
            f"{row['secondary_accuracy']:.3f} | {row['primary_accuracy']:.3f} | "
            f"{row['majority_baseline']:.3f} |"
        )
    lat = results["latency"]
    print(
        f"\nLatency per question ({lat['questions']} LiveQA questions, after warm-up): "
        f"p50 {lat['p50 ms']:.0f} ms, p95 {lat['p95 ms']:.0f} ms, mean {lat['mean ms']:.0f} ms"
    )
    print(
        f'Off-topic questions refused ("I don\'t know"): {lat["off-topic refused"]:.0%} of '
        f"{len(OFF_TOPIC)}; LiveQA questions answered: {lat['LiveQA answered']:.0%}"
    )
    print(f"RSS {results['rss MB']:.0f} MB (max {results['max rss MB']:.0f} MB)")


if __name__ == "__main__":
    raise SystemExit(main())
