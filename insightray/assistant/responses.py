"""Answers: templates for structured intents, else sentences extracted from passages.

An extractive answer is made only of sentences cut from retrieved passages, each kept with
its passage and offsets and cited (document id, pid, URL). :func:`verify` drops any sentence
that is not exactly the text at its offsets in a retrieved passage, so nothing unsupported
reaches the user. Every answer ends with :data:`NOTICE`. Templates are data
(:data:`TEMPLATES`).

Example:
    >>> render_template("dont_know")[:12]
    "I don't know"
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from insightray.assistant.knowledge import Passage
from insightray.assistant.retrieval import Hit
from insightray.assistant.text import sentence_spans, terms

__all__ = [
    "NOTICE",
    "TEMPLATES",
    "AnswerSentence",
    "Citation",
    "ComposedAnswer",
    "ResponseConfig",
    "compose_extractive",
    "covers",
    "grounded",
    "not_known",
    "render_template",
    "verify",
]

NOTICE = (
    "This is general health information, not medical advice. Please talk to a doctor or "
    "other health professional about your situation."
)

TEMPLATES: dict[str, str] = {
    "emergency": "{advice} What you describe ({evidence}) can be a medical emergency: "
    "please get help now rather than waiting for an answer here.",
    "act_now": "What to do now: {advice} What follows is general information from my sources.",
    "greeting": "Hello! I answer general health questions from trusted public sources "
    "(NIH's MedQuAD collection) and cite where each sentence comes from. What would you "
    "like to know?",
    "thanks": "You're welcome. Is there anything else you would like to know?",
    "goodbye": "Take care, and please see a health professional if you are worried.",
    "dont_know": "I don't know: I could not find a reliable answer to that in my sources. "
    "Please ask a doctor, nurse or pharmacist, who can look at your situation.",
    "dont_know_focus": "I don't know: my sources say nothing about {focus} that answers "
    "this, so I will not answer from passages about something else. {where}",
    "out_of_scope": "I don't know: I found nothing about that in my medical sources, which "
    "cover diseases, symptoms, tests and treatments. For a health concern, please see a "
    "clinician.",
}


#: Where information about each kind of focus is found (by slot type), for "I don't know".
WHERE_TO_LOOK: dict[str, str] = {
    "Medication": "For a medicine, its package leaflet (patient information leaflet) and a "
    "pharmacist are the places to ask about {focus}; MedlinePlus Drugs (medlineplus.gov) "
    "has public drug pages.",
    "Disease": "A doctor or nurse can tell you about {focus}; MedlinePlus (medlineplus.gov) "
    "and the NHS website have public pages on many conditions.",
    "default": "A doctor, nurse or pharmacist can tell you about {focus}.",
}

#: A complete sentence ends like one.
_COMPLETE = re.compile(r"[.!?][\"')\]]*$")
#: Openings that lean on an earlier sentence ("This would...", "However, ...").
_ANAPHORA = re.compile(r"(?:this|these|that|those|it|its|they|their|however|but|also|such)\b", re.I)

#: Words that answer each question type, for scoring sentences (data).
CUES: dict[str, tuple[str, ...]] = {
    "symptoms": ("symptoms", "signs", "feel", "pain", "include", "may have"),
    "cause": ("caused", "causes", "due", "because", "result", "happens", "triggers", "risk"),
    "treatment": ("treat", "treatment", "therapy", "medicine", "medicines", "surgery", "drugs"),
    "prevention": ("prevent", "avoid", "reduce", "vaccine", "lower"),
    "diagnosis": ("diagnose", "diagnosis", "test", "tests", "exam", "doctor"),
    "prognosis": ("outlook", "prognosis", "survival", "recover", "life expectancy"),
    "inheritance": ("inherited", "genes", "gene", "family", "families", "pattern"),
    "susceptibility": ("risk", "people", "more likely", "age"),
    "frequency": ("common", "affects", "people", "prevalence", "estimated"),
    "complications": ("complications", "lead", "damage", "problems"),
    "side_effects": ("side effects", "reactions", "risks"),
    "dosage": ("dose", "doses", "mg", "daily", "take"),
}


def render_template(name: str, **values: str) -> str:
    """The template ``name`` filled with ``values``."""
    return TEMPLATES[name].format(**values)


@dataclass(frozen=True)
class Citation:
    """Where cited sentences come from."""

    number: int
    source: str
    document_id: str
    qa_id: str
    url: str
    focus: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "number": self.number,
            "source": self.source,
            "document_id": self.document_id,
            "qa_id": self.qa_id,
            "url": self.url,
            "focus": self.focus,
        }


@dataclass(frozen=True)
class AnswerSentence:
    """An answer sentence: its text, the citation number and its place in the passage."""

    text: str
    citation: int
    passage_id: str
    start: int
    end: int

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "text": self.text,
            "citation": self.citation,
            "passage_id": self.passage_id,
            "start": self.start,
            "end": self.end,
        }


@dataclass(frozen=True)
class ComposedAnswer:
    """The answer text (with ``[n]`` markers and the notice), its sentences, their citations
    and the passages they were cut from (``evidence``).

    ``kind`` is ``"extractive"`` or the template name.
    """

    text: str
    kind: str
    sentences: tuple[AnswerSentence, ...] = ()
    citations: tuple[Citation, ...] = ()
    evidence: tuple[Passage, ...] = ()


@dataclass(frozen=True)
class ResponseConfig:
    """How extractive answers are put together.

    Attributes:
        max_sentences: Most sentences in an answer.
        max_words: Stop adding sentences beyond this many words.
        passages: Passages (best first) sentences may come from.
        min_overlap: A sentence from a passage other than the best must share at least this
            share of the question's terms.
    """

    max_sentences: int = 4
    max_words: int = 110
    passages: int = 3
    min_overlap: float = 0.5


def compose_extractive(
    question: str,
    hits: Sequence[Hit],
    config: ResponseConfig | None = None,
    qtype: str | None = None,
    chunks_of: Callable[[Passage], Sequence[Passage]] | None = None,
) -> ComposedAnswer:
    """Pick sentences from the best passages, cite them, verify them, add the notice.

    The main answer is the first retrieved answer on the top topic that has whole sentences
    (some are bare link lists); its sentences, from every chunk of it (``chunks_of``), are
    scored by the share of the question's terms they contain (cue words of the asked
    question type count half) plus a bonus for opening the answer. Other passages on the
    same topic add at most one well-matching sentence each.
    """
    config = config or ResponseConfig()
    if not hits:
        return ComposedAnswer(f"{render_template('dont_know')}\n\n{NOTICE}", "dont_know")
    wanted = set(terms(question))
    cues = set(terms(" ".join(CUES.get(qtype or "", ())))) - wanted
    topic = hits[0].passage.focus.lower()
    same_topic = [
        (rank, hit.passage)
        for rank, hit in enumerate(hits[: config.passages])
        if hit.passage.focus.lower() == topic
    ]
    chosen: list[tuple[int, Passage, int, int, float]] = []  # rank, passage, start, end, score
    main: int | None = None
    for rank, passage in same_topic:
        if main is None:
            chunks = chunks_of(passage) if chunks_of else [passage]
            ordered = [passage, *(c for c in chunks if c.passage_id != passage.passage_id)]
            candidates = [c for chunk in ordered for c in _scored(chunk, 0, wanted, cues, config)]
            if candidates:
                main = rank
                found = sorted(candidates, key=lambda c: -c[4])[: config.max_sentences - 1]
                chosen += [(rank, *c[1:]) for c in found]
            continue
        found = sorted(_scored(passage, 1, wanted, cues, config), key=lambda c: -c[4])[:1]
        chosen += [(rank, *c[1:]) for c in found]
    picked: list[tuple[int, Passage, int, int, float]] = []
    total = 0
    seen_terms: list[set[str]] = []
    for item in sorted(chosen, key=lambda c: (c[0] != main, -c[4])):
        text = item[1].text[item[2] : item[3]]
        bag = set(terms(text))
        if any(len(bag & other) / max(len(bag | other), 1) > 0.6 for other in seen_terms):
            continue  # near-duplicate of a sentence already chosen
        if picked and total + len(text.split()) > config.max_words:
            continue
        picked.append(item)
        seen_terms.append(bag)
        total += len(text.split())
        if len(picked) == config.max_sentences:
            break
    picked.sort(key=lambda c: (c[0], c[1].chunk, c[2]))
    numbers: dict[int, int] = {}
    sentences = []
    citations: list[Citation] = []
    for rank, passage, start, end, _ in picked:
        if rank not in numbers:
            numbers[rank] = len(numbers) + 1
            p = passage
            citations.append(
                Citation(numbers[rank], p.source, p.document_id, p.qa_id, p.url, p.focus)
            )
        text = passage.text[start:end]
        sentences.append(AnswerSentence(text, numbers[rank], passage.passage_id, start, end))
    evidence = tuple(dict.fromkeys(p for _, p, _, _, _ in picked))
    verified = verify(sentences, evidence)
    if not verified:
        return ComposedAnswer(f"{render_template('dont_know')}\n\n{NOTICE}", "dont_know")
    used = {s.citation for s in verified}
    prose = " ".join(f"{s.text} [{s.citation}]" for s in verified)
    return ComposedAnswer(
        f"{prose}\n\n{NOTICE}",
        "extractive",
        tuple(verified),
        tuple(c for c in citations if c.number in used),
        evidence,
    )


def _scored(
    passage: Passage, rank: int, wanted: set[str], cues: set[str], config: ResponseConfig
) -> list[tuple[int, Passage, int, int, float]]:
    """Candidate sentences of one passage with their scores."""
    found = []
    for position, (start, end) in enumerate(sentence_spans(passage.text)):
        sentence = passage.text[start:end]
        if len(sentence.split()) < 4 or not _COMPLETE.search(sentence):
            continue  # headings, list intros ("...diagnose if") and fragments
        bag = set(terms(sentence))
        overlap = (len(bag & wanted) + 0.5 * len(bag & cues)) / max(len(wanted), 1)
        opening = passage.chunk == 0 and position < 2
        if rank == 0 and (overlap > 0 or opening):
            score = overlap + (0.5 if opening and position == 0 else 0.25 if opening else 0)
            score -= 0.3 * (not opening and bool(_ANAPHORA.match(sentence)))
        elif rank and overlap >= config.min_overlap:
            score = overlap - 0.3 * rank
        else:
            continue
        found.append((rank, passage, start, end, score))
    return found


def covers(
    question: str,
    sentences: Sequence[AnswerSentence],
    topics: Sequence[str],
    qtype: str | None = None,
) -> bool:
    """Whether the sentences address what the question asks beyond its topic: some term of
    the question that is not a topic word (or a cue word of the question type) appears in
    them. A question that only names a topic ("What is gout?") is always covered.

    Example:
        >>> said = [AnswerSentence("Gout is caused by uric acid.", 1, "p", 0, 28)]
        >>> covers("What causes gout?", said, ["Gout"])
        True
        >>> covers("Is gout contagious?", said, ["Gout"])
        False
    """
    topic_terms = {t for name in topics for t in terms(name)}
    asked = set(terms(question)) - topic_terms
    if not asked:
        return True
    said = {t for s in sentences for t in terms(s.text)}
    return bool((asked | set(terms(" ".join(CUES.get(qtype or "", ()))))) & said)


def verify(
    sentences: Sequence[AnswerSentence], passages: Sequence[Passage]
) -> list[AnswerSentence]:
    """Keep the sentences that are exactly the text at their offsets of one of ``passages``
    (the retrieved passages the answer was cut from).

    Example:
        >>> verify([AnswerSentence("made up", 1, "nowhere", 0, 7)], [])
        []
    """
    texts = {passage.passage_id: passage.text for passage in passages}
    return [
        s
        for s in sentences
        if s.passage_id in texts and texts[s.passage_id][s.start : s.end] == s.text
    ]


def grounded(name: str, evidence: Sequence[Passage]) -> bool:
    """Whether the passages an answer cites mention ``name``: every term of it is in one
    passage's text, question, topic or the topic's synonyms (a parent topic such as
    "Diabetes Medicines" naming the drug counts).

    Example:
        >>> p = Passage("p", "s", "d", "q", "u", "Drug Reactions", "information",
        ...             "What are drug reactions?", "Most medicines have side effects.")
        >>> grounded("metformin", [p]), grounded("side effects", [p])
        (False, True)
    """
    wanted = set(terms(name))
    if not wanted:
        return True
    for passage in evidence:
        said = " ".join((passage.text, passage.question, passage.focus, *passage.synonyms))
        if wanted <= set(terms(said)):
            return True
    return False


def not_known(focus: str, slot_type: str | None) -> str:
    """The "I don't know" that names ``focus`` and where such information is found, with
    :data:`NOTICE`.

    Example:
        >>> "package leaflet" in not_known("metformin", "Medication")
        True
    """
    where = WHERE_TO_LOOK.get(slot_type or "", WHERE_TO_LOOK["default"]).format(focus=focus)
    return f"{render_template('dont_know_focus', focus=focus, where=where)}\n\n{NOTICE}"
