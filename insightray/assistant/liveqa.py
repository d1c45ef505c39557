"""TREC 2017 LiveQA medical questions: real consumer questions with annotated sub-questions.

Each question has a subject, a free-text message and sub-questions annotated with their
FOCUS (the disease or topic) and TYPE (treatment, cause, dosage...). The assistant uses them
as held-out test questions (retrieval) and as intent training data.

Example:
    >>> question = LiveQuestion("1:Q2", "Migraine types", "Which treatment works?")
    >>> question.text
    'Migraine types. Which treatment works?'
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

from insightray.assistant.text import normalize_space
from insightray.config import data_root
from insightray.errors import CorruptFileError, InputNotFoundError

__all__ = ["LiveQuestion", "SubQuestion", "default_liveqa_path", "read_liveqa"]


@dataclass(frozen=True)
class SubQuestion:
    """A LiveQA sub-question's annotations: its focus and question type."""

    focus: str
    qtype: str


@dataclass(frozen=True)
class LiveQuestion:
    """A TREC 2017 LiveQA consumer question with its annotated sub-questions."""

    question_id: str
    subject: str
    message: str
    subquestions: tuple[SubQuestion, ...] = field(default_factory=tuple)

    @property
    def text(self) -> str:
        """Subject and message as one question text."""
        subject = self.subject.strip()
        if subject and not subject.endswith((".", "?", "!")):
            subject += "."
        return normalize_space(f"{subject} {self.message}")


def default_liveqa_path() -> Path:
    """The LiveQA training questions: ``data_root()/text/qa/liveqa_train``."""
    return data_root() / "text" / "qa" / "liveqa_train"


def read_liveqa(path: str | Path | None = None) -> list[LiveQuestion]:
    """LiveQA medical training questions (both XML files of the folder, or one file).

    Example:
        >>> questions = read_liveqa()  # doctest: +SKIP
        >>> len(questions), questions[0].subquestions[0]  # doctest: +SKIP
        (446, SubQuestion(focus='cardiac amyloidosis', qtype='information'))
    """
    location = Path(path) if path is not None else default_liveqa_path()
    if not location.exists():
        raise InputNotFoundError(str(location), "LiveQA questions not found", "set INSIGHTRAY_DATA")
    files = sorted(location.glob("*.xml")) if location.is_dir() else [location]
    questions: list[LiveQuestion] = []
    for file in files:
        try:
            root = ET.fromstring(file.read_bytes())
        except ET.ParseError as error:
            raise CorruptFileError(str(file), f"invalid XML ({error})", "fix it") from error
        for element in root.iter("NLM-QUESTION"):
            number = element.get("questionid") or element.get("qid") or str(len(questions))
            subs = tuple(
                SubQuestion(
                    normalize_space(sub.findtext("ANNOTATIONS/FOCUS") or ""),
                    normalize_space(sub.findtext("ANNOTATIONS/TYPE") or "").lower(),
                )
                for sub in element.iter("SUB-QUESTION")
            )
            questions.append(
                LiveQuestion(
                    question_id=f"{file.stem.rsplit('-', 1)[-1]}:{number}",
                    subject=normalize_space(element.findtext("SUBJECT") or ""),
                    message=normalize_space(element.findtext("MESSAGE") or ""),
                    subquestions=subs,
                )
            )
    return questions
