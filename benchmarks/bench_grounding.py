"""Refusal rate of the assistant on answerable and unanswerable questions (the grounding
check: an answer only from evidence that names the question's focus).

A small knowledge index is built from a fixed subset of MedQuAD (the first ``--indexed``
documents of MPlus Health Topics and of GHR). Question sets, all MedQuAD questions:

* answerable: questions of the indexed documents (their answers are in the index);
* unanswerable, medicines: MedlinePlus Drugs questions (MedQuAD ships them without answers,
  so no medicine page is ever indexed), e.g. "What are the side effects or risks of X ?";
* unanswerable, diseases: questions of GARD documents whose focus is not an indexed topic.

A refusal is an answer of kind ``dont_know`` or ``out_of_scope``. Run it once with this
checkout and once with the code before the change (``PYTHONPATH=<old checkout>``) for the
same-machine comparison; ``--no-grounding`` switches the new check off.

Usage:
    PYTHONPATH=. python benchmarks/bench_grounding.py --json runs/grounding.json
"""

from __future__ import annotations

import argparse
import json
import random
import re
import time
import zipfile
from dataclasses import fields
from pathlib import Path

from scipy.stats import binomtest

from insightray.assistant.chat import Assistant, AssistantConfig
from insightray.assistant.embeddings import Embedder, EmbedderConfig
from insightray.assistant.index import IndexConfig, build_index
from insightray.assistant.knowledge import read_knowledge
from insightray.config import data_root

_QUESTION = re.compile(r'<Question[^>]*qtype="([^"]+)"[^>]*>(.*?)</Question>', re.S)
_FOCUS = re.compile(r"<Focus>(.*?)</Focus>", re.S)


def wilson(k: int, n: int) -> list[float]:
    interval = binomtest(k, n).proportion_ci(0.95, method="wilson") if n else None
    return [round(interval.low, 3), round(interval.high, 3)] if interval else [0.0, 0.0]


def subset(zip_path: Path, target: Path, indexed: int) -> tuple[Path, set[str]]:
    """A zip of the first ``indexed`` Health Topics and GHR documents; their focus names."""
    with zipfile.ZipFile(zip_path) as source:
        names = sorted(source.namelist())
        chosen = [
            n
            for folder in ("4_MPlus_Health_Topics_QA", "3_GHR_QA")
            for n in [m for m in names if f"/{folder}/" in m and m.endswith(".xml")][:indexed]
        ]
        with zipfile.ZipFile(target, "w") as out:
            for name in chosen:
                out.writestr(name, source.read(name))
    focus = {p.focus.lower() for p in read_knowledge(target)}
    return target, focus


def questions(
    zip_path: Path, folder: str, limit: int, rng: random.Random, skip: set[str]
) -> list[str]:
    """``limit`` questions of ``folder`` (one per document) whose focus is not in ``skip``."""
    found = []
    with zipfile.ZipFile(zip_path) as source:
        for name in sorted(n for n in source.namelist() if f"/{folder}/" in n):
            text = source.read(name).decode("utf-8", "replace")
            focus = _FOCUS.search(text)
            if not focus or focus.group(1).strip().lower() in skip:
                continue
            asked = [q.strip() for _, q in _QUESTION.findall(text) if q.strip()]
            if asked:
                found.append(rng.choice(asked))
    rng.shuffle(found)
    return found[:limit]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--indexed", type=int, default=40, help="Documents per indexed folder.")
    parser.add_argument("--per-set", type=int, default=80, help="Questions per set.")
    parser.add_argument("--work", type=Path, default=Path("runs/grounding"))
    parser.add_argument("--no-grounding", action="store_true")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    rng = random.Random(23)
    medquad = data_root() / "text" / "qa" / "medquad.zip"
    args.work.mkdir(parents=True, exist_ok=True)
    small, indexed_focus = subset(medquad, args.work / "medquad-subset.zip", args.indexed)
    config = IndexConfig(embedder=EmbedderConfig(max_length=128))
    embedder = Embedder(config.embedder)
    index = build_index([small], args.work / "index", config, embedder=embedder, progress=False)
    options = {"index_dir": index.folder, "embedder": config.embedder}
    if args.no_grounding and any(f.name == "ground_on_focus" for f in fields(AssistantConfig)):
        options["ground_on_focus"] = False
    assistant = Assistant(AssistantConfig(**options), index=index, embedder=embedder)  # type: ignore[arg-type]
    pairs = list(read_knowledge(small))
    answerable = [p.question for p in rng.sample(pairs, min(args.per_set, len(pairs)))]
    sets = {
        "answerable": answerable,
        "unanswerable_medicines": questions(medquad, "11_MPlusDrugs_QA", args.per_set, rng, set()),
        "unanswerable_diseases": questions(medquad, "2_GARD_QA", args.per_set, rng, indexed_focus),
    }
    results: dict[str, object] = {"grounding": not args.no_grounding}
    for name, asked in sets.items():
        started = time.perf_counter()
        kinds = [assistant.ask(q).kind for q in asked]
        refused = sum(k in ("dont_know", "out_of_scope") for k in kinds)
        results[name] = {
            "n": len(asked),
            "refused": refused,
            "refusal_rate": round(refused / len(asked), 3),
            "ci95": wilson(refused, len(asked)),
            "ms_per_question": round((time.perf_counter() - started) * 1000 / len(asked), 1),
        }
    metformin = assistant.ask("What are the side effects of metformin?")
    results["metformin"] = {"kind": metformin.kind, "answer": metformin.answer[:200]}
    print(json.dumps(results, indent=2))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
