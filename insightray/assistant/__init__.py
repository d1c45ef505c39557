"""The medical assistant: cited answers from a knowledge index, intents, slots, emergencies.

Modules: :mod:`~insightray.assistant.knowledge` (MedQuAD, folders, CSV; chunking),
:mod:`~insightray.assistant.liveqa` (TREC LiveQA questions),
:mod:`~insightray.assistant.embeddings` (MiniLM sentence vectors),
:mod:`~insightray.assistant.retrieval` (FAISS + BM25, fusion, re-ranking),
:mod:`~insightray.assistant.index` (build once, persist, reuse),
:mod:`~insightray.assistant.intents` (hierarchical intent; trained by
:mod:`~insightray.training.intents`),
:mod:`~insightray.assistant.emergency` (escalation rules),
:mod:`~insightray.assistant.triage` (emergency / urgent / routine / self-care, rules in
:mod:`~insightray.assistant.triage_rules`),
:mod:`~insightray.assistant.slots` (Disease, Symptom, Medication, Duration, Severity,
Location), :mod:`~insightray.assistant.state` (dialogue state, follow-ups),
:mod:`~insightray.assistant.responses` (templates, extractive cited answers) and
:mod:`~insightray.assistant.chat` (:class:`Assistant`).

Example:
    >>> from insightray.assistant import Assistant
    >>> assistant = Assistant()  # doctest: +SKIP
    >>> answer = assistant.ask("What are the symptoms of shingles?")  # doctest: +SKIP
    >>> sorted(answer.to_dict())[:3]  # doctest: +SKIP
    ['answer', 'citations', 'confidence']
"""

from __future__ import annotations

from insightray.assistant.chat import Assistant, AssistantAnswer, AssistantConfig
from insightray.assistant.embeddings import Embedder, EmbedderConfig
from insightray.assistant.emergency import EmergencyAssessment, EmergencyDetector
from insightray.assistant.index import (
    IndexConfig,
    KnowledgeIndex,
    build_index,
    default_index_dir,
    load_index,
    open_index,
)
from insightray.assistant.intents import Intent, IntentClassifier
from insightray.assistant.knowledge import ChunkConfig, Passage, QAPair, read_knowledge
from insightray.assistant.retrieval import Hit, Retriever, RetrieverConfig
from insightray.assistant.slots import Slot, SlotConfig, SlotFiller
from insightray.assistant.state import ConversationStore, DialogueState, MemoryConversations
from insightray.assistant.triage import Triage, TriageAssessment

__all__ = [
    "Assistant",
    "AssistantAnswer",
    "AssistantConfig",
    "ChunkConfig",
    "ConversationStore",
    "DialogueState",
    "Embedder",
    "EmbedderConfig",
    "EmergencyAssessment",
    "EmergencyDetector",
    "Hit",
    "IndexConfig",
    "Intent",
    "IntentClassifier",
    "KnowledgeIndex",
    "MemoryConversations",
    "Passage",
    "QAPair",
    "Retriever",
    "RetrieverConfig",
    "Slot",
    "SlotConfig",
    "SlotFiller",
    "Triage",
    "TriageAssessment",
    "build_index",
    "default_index_dir",
    "load_index",
    "open_index",
    "read_knowledge",
]
