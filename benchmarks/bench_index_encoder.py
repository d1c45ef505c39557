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

With ``--retriever DIR`` (a ``train retriever`` folder) the run compares encoders instead:
the same subset, plus the pairs of held-out MedQuAD documents (the retriever's ``test``
split, never trained or selected on), is indexed by the packaged encoder and by the
fine-tuned one (both ONNX Runtime INT8 passages, as ``index build`` does; questions by
PyTorch with the index's model, the intent head on the packaged encoder's vectors, as the
assistant does), and LiveQA's answerable questions and the held-out MedQuAD questions are
searched in both (a MedQuAD hit must have the question's focus and question type). Recall@5,
MRR@10 and the share of questions the assistant would answer (retrieval confidence at its
threshold), dense and hybrid, with paired bootstrap 95 % CIs of the difference. The rule to
ship, fixed before any figure was read, is :data:`SHIP_RULE`; the script prints its verdict.

Example:
    PYTHONPATH=. python benchmarks/bench_index_encoder.py --pairs 1500 --json out.json
    PYTHONPATH=. python benchmarks/bench_index_encoder.py --retriever DIR --pairs 1200 --threads 1
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
ASSISTANT = SYSTEMS[1]
SHIP_RULE = (
    "ship the fine-tuned retriever as the default if, for the assistant's hybrid retrieval, "
    "the Recall@5 difference (fine-tuned - packaged) on LiveQA's answerable questions has a "
    "point estimate > 0 and a 95 % CI lower bound > -0.01, and on the held-out MedQuAD "
    "questions a 95 % CI lower bound > -0.01"
)


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
    parser.add_argument(
        "--retriever", type=Path, default=None, help="compare this fine-tuned retriever instead"
    )
    parser.add_argument(
        "--medquad-questions", type=int, default=300, help="held-out MedQuAD questions"
    )
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch

    if args.retriever is not None:
        torch.set_num_threads(args.threads)
        results = {"machine": cpu_flags(), "threads": args.threads, "rule": SHIP_RULE}
        results.update(_retriever_comparison(args))
        print(json.dumps(results, indent=1))
        if args.json:
            args.json.write_text(json.dumps(results, indent=1), encoding="utf-8")
        return

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
    results["retrieval"] = _compare(rows, "torch passages, torch queries", "torch")
    return results


def _retriever_comparison(args: argparse.Namespace) -> dict[str, Any]:
    """Packaged against fine-tuned encoder on one subset: LiveQA and held-out MedQuAD."""
    from insightray.assistant.embeddings import Embedder, EmbedderConfig
    from insightray.assistant.index import IndexConfig, build_index
    from insightray.assistant.knowledge import default_knowledge_path, read_knowledge
    from insightray.assistant.liveqa import LiveQuestion, SubQuestion, read_liveqa
    from insightray.models.card import load_card
    from insightray.training.retriever import document_split

    card = load_card(args.retriever / "card.json")
    shares = card.preprocessing.extra["train_config"]
    work = Path(tempfile.mkdtemp(prefix="bench-retriever-"))
    pairs = list(read_knowledge(default_knowledge_path()))
    seen: set[str] = set()
    live = [q for q in read_liveqa() if not (q.text in seen or seen.add(q.text))]
    subset = _subset(pairs, live, args.pairs, seed=0)
    held = [p for p in pairs
            if document_split(p, shares["val_share"], shares["test_share"]) == "test"]  # fmt: skip
    documents = sorted({(p.source, p.document_id) for p in held})
    random.Random(1).shuffle(documents)
    chosen_docs: set[tuple[str, str]] = set()
    count = 0
    for key in documents:
        if count >= args.medquad_questions:
            break
        chosen_docs.add(key)
        count += sum(1 for p in held if (p.source, p.document_id) == key)
    in_subset = {(p.source, p.document_id, p.qa_id) for p in subset}
    extra = [p for p in held if (p.source, p.document_id) in chosen_docs]
    subset += [p for p in extra if (p.source, p.document_id, p.qa_id) not in in_subset]
    medquad = [
        LiveQuestion(f"{p.source}:{p.document_id}:{p.qa_id}", "", p.question,
                     (SubQuestion(p.focus, p.qtype),))
        for p in extra
    ]  # fmt: skip
    packaged = Embedder(EmbedderConfig(num_threads=args.threads, cache_dir=work))
    arms = {"packaged": None, "fine-tuned": args.retriever}
    rows: dict[str, dict[str, list[dict[str, Any]]]] = {"LiveQA": {}, "MedQuAD held-out": {}}
    builds = {}
    for arm, model_path in arms.items():
        passages = EmbedderConfig(model_path=model_path, backend="onnx-int8",
                                  num_threads=args.threads, cache_dir=work)  # fmt: skip
        started = time.perf_counter()
        index = build_index([default_knowledge_path()], work / arm, IndexConfig(embedder=passages),
                            pairs=subset, progress=False)  # fmt: skip
        queries = (packaged if model_path is None else
                   Embedder(EmbedderConfig(model_path=model_path, num_threads=args.threads,
                                           cache_dir=work)))  # fmt: skip
        builds[arm] = {"passages": index.manifest["passages"],
                       "seconds with export": round(time.perf_counter() - started, 1)}  # fmt: skip
        for name, questions, strict in (
            ("LiveQA", live, False),
            ("MedQuAD held-out", medquad, True),
        ):
            rows[name][arm] = retrieval(index, queries, questions, intent_embedder=packaged,
                                        match_qtype=strict)  # fmt: skip
    tables = {name: _compare(arm_rows, "packaged", "packaged") for name, arm_rows in rows.items()}
    verdict = _verdict(tables)
    return {"subset pairs": len(subset), "medquad questions": len(medquad),
            "subset builds": builds, "retrieval": tables, "ship": verdict,
            "retriever card metrics": card.metrics}  # fmt: skip


def _verdict(tables: dict[str, list[dict[str, Any]]]) -> bool:
    """:data:`SHIP_RULE` applied to the tables."""
    key = "recall@5 diff vs packaged [95% CI]"

    def diff(name: str) -> list[float]:
        return next(
            e[key] for e in tables[name] if e["arm"] == "fine-tuned" and e["system"] == ASSISTANT
        )

    live, medquad = diff("LiveQA"), diff("MedQuAD held-out")
    return live[0] > 0 and live[1] > -0.01 and medquad[1] > -0.01


def _compare(
    rows: dict[str, list[dict[str, Any]]], reference: str, label: str
) -> list[dict[str, Any]]:
    """Recall@5 and MRR@10 of each arm and system over the answerable questions, with the
    paired bootstrap 95 % CI of the difference against the ``reference`` arm."""
    baseline = {row["system"]: row for row in rows[reference]}
    table = []
    for arm, arm_rows in rows.items():
        for row in arm_rows:
            if row["system"] not in SYSTEMS:
                continue
            keep = [i for i, ok in enumerate(baseline[row["system"]]["answerable mask"]) if ok]
            base = baseline[row["system"]]
            entry = {"arm": arm, "system": row["system"], "answerable": len(keep)}
            for metric, key in (
                ("recall@5", "hits@5"),
                ("mrr@10", "reciprocal ranks"),
                ("confident", "confident"),
            ):
                ours = [row[key][i] for i in keep]
                ref = [base[key][i] for i in keep]
                entry[metric] = round(float(np.mean(ours)), 3)
                entry[f"{metric} diff vs {label} [95% CI]"] = [
                    round(v, 3) for v in _paired(ref, ours)
                ]
            table.append(entry)
    return table


if __name__ == "__main__":
    main()
