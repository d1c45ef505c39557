"""Knowledge-index encoders compared in one run: PyTorch (sentence-transformers) against ONNX
Runtime fp32 and INT8, for build speed and for retrieval on real consumer questions.

Speed: the same passages are encoded by each encoder in interleaved rounds (the fastest round
counts, the machine being shared); the full MedQuAD build time is projected from the rate.
Retrieval: a MedQuAD subset (documents whose focus some LiveQA question asks about, then
random other documents, ``--pairs`` question-answer pairs in all) is indexed by each encoder,
and LiveQA's questions are searched with the queries encoded by PyTorch (as the assistant
does) and, for INT8, also by INT8. Recall@5 and MRR@10 over the answerable questions (focus
match as in ``bench_assistant.py``), with a paired bootstrap 95 % CI of the difference
against PyTorch.

Example:
    PYTHONPATH=. python benchmarks/bench_index_encoder.py --pairs 1500 --json out.json
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_assistant import _focus_terms, _matches, retrieval
from bench_cli_startup import cpu_flags

SYSTEMS = ("dense", "hybrid RRF + focus and question-type re-rank (assistant)")


def _subset(pairs: list[Any], questions: list[Any], limit: int, seed: int) -> list[Any]:
    """Pairs of the documents some question asks about (in random order, up to 60 % of
    ``limit``), then of random other documents up to ``limit`` pairs."""
    documents: dict[tuple[str, str], list[Any]] = {}
    for pair in pairs:
        documents.setdefault((pair.source, pair.document_id), []).append(pair)
    wanted = [_focus_terms(s.focus) for q in questions for s in q.subquestions]
    order = list(documents)
    random.Random(seed).shuffle(order)
    names = {
        key: [_focus_terms(n) for n in (docs[0].focus, *docs[0].synonyms)]
        for key, docs in documents.items()
    }
    gold = [key for key in order if any(_matches(w, names[key]) for w in wanted)]
    chosen: list[Any] = []
    for key in gold:
        if len(chosen) >= 0.6 * limit:
            break
        chosen += documents[key]
    for key in order:
        if len(chosen) >= limit:
            break
        if key not in gold:
            chosen += documents[key]
    return chosen


def _paired(a: list[float], b: list[float], rounds: int = 2000) -> tuple[float, float, float]:
    diff = np.asarray(b, dtype=float) - np.asarray(a, dtype=float)
    rng = np.random.default_rng(0)
    means = [diff[rng.integers(0, len(diff), len(diff))].mean() for _ in range(rounds)]
    low, high = np.percentile(means, [2.5, 97.5])
    return float(diff.mean()), float(low), float(high)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=1500, help="QA pairs in the subset")
    parser.add_argument("--speed-sample", type=int, default=256, help="passages timed")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--speed-only", action="store_true", help="skip the retrieval part")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch

    from insightray.assistant.embeddings import Embedder, EmbedderConfig
    from insightray.assistant.index import IndexConfig, embed_text
    from insightray.assistant.knowledge import chunk_pairs, default_knowledge_path, read_knowledge

    torch.set_num_threads(args.threads)
    work = Path(tempfile.mkdtemp(prefix="bench-index-encoder-"))
    encoders = {
        "torch": EmbedderConfig(num_threads=args.threads),
        "onnx fp32": EmbedderConfig(backend="onnx", num_threads=args.threads, cache_dir=work),
        "onnx int8": EmbedderConfig(backend="onnx-int8", num_threads=args.threads, cache_dir=work),
    }
    embedders = {name: Embedder(config) for name, config in encoders.items()}
    results: dict[str, Any] = {"machine": cpu_flags(), "threads": args.threads}
    exports = {}
    for name, embedder in embedders.items():
        started = time.perf_counter()
        embedder.encode_one("warm up")  # loads the model; exports the ONNX file the first time
        exports[name] = round(time.perf_counter() - started, 1)
    results["load or export seconds"] = exports

    pairs = list(read_knowledge(default_knowledge_path()))
    all_texts = [embed_text(p) for p in chunk_pairs(pairs, IndexConfig().chunk)]
    sample = random.Random(0).sample(all_texts, args.speed_sample)
    times: dict[str, list[float]] = {name: [] for name in embedders}
    for _ in range(args.rounds):
        for name, embedder in embedders.items():
            started = time.perf_counter()
            embedder.encode(sample)
            times[name].append(time.perf_counter() - started)
    best = {name: min(values) for name, values in times.items()}
    results["speed"] = {
        name: {
            "rounds s": [round(t, 2) for t in times[name]],
            "passages/s": round(args.speed_sample / best[name], 1),
            "speed-up vs torch": round(best["torch"] / best[name], 2),
            "projected full build min": round(
                len(all_texts) / args.speed_sample * best[name] / 60, 1
            ),
        }
        for name in embedders
    }
    results["full index passages"] = len(all_texts)
    if not args.speed_only:
        results.update(_retrieval(pairs, args.pairs, encoders, embedders, work))
    print(json.dumps(results, indent=1))
    if args.json:
        args.json.write_text(json.dumps(results, indent=1), encoding="utf-8")


def _retrieval(
    pairs: list[Any], limit: int, encoders: dict[str, Any], embedders: dict[str, Any], work: Path
) -> dict[str, Any]:
    from insightray.assistant.index import IndexConfig, build_index
    from insightray.assistant.knowledge import default_knowledge_path
    from insightray.assistant.liveqa import read_liveqa

    seen: set[str] = set()
    questions = [q for q in read_liveqa() if not (q.text in seen or seen.add(q.text))]
    subset = _subset(pairs, questions, limit, seed=0)
    rows: dict[str, list[dict[str, Any]]] = {}
    builds = {}
    for name in ("torch", "onnx int8"):
        index = build_index(
            [default_knowledge_path()], work / name.replace(" ", "-"),
            IndexConfig(embedder=encoders[name]), embedder=embedders[name], pairs=subset,
            progress=False,
        )  # fmt: skip
        builds[name] = {
            "passages": index.manifest["passages"],
            "seconds": index.manifest["build_seconds"],
        }
        rows[f"{name} passages, torch queries"] = retrieval(index, embedders["torch"], questions)
        if name == "onnx int8":
            rows["onnx int8 passages, int8 queries"] = retrieval(index, embedders[name], questions)
    results: dict[str, Any] = {"subset builds": builds}
    baseline = {row["system"]: row for row in rows["torch passages, torch queries"]}
    table = []
    for arm, arm_rows in rows.items():
        for row in arm_rows:
            if row["system"] not in SYSTEMS:
                continue
            keep = [i for i, ok in enumerate(row["answerable mask"]) if ok]
            base = baseline[row["system"]]
            entry = {"arm": arm, "system": row["system"], "answerable": len(keep)}
            for metric, key in (("recall@5", "hits@5"), ("mrr@10", "reciprocal ranks")):
                ours = [row[key][i] for i in keep]
                ref = [base[key][i] for i in keep]
                entry[metric] = round(float(np.mean(ours)), 3)
                entry[f"{metric} diff vs torch [95% CI]"] = [
                    round(v, 3) for v in _paired(ref, ours)
                ]
            table.append(entry)
    results["retrieval"] = table
    return results


if __name__ == "__main__":
    main()
