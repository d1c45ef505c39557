"""Fine-tuning the assistant's retrieval encoder on MedQuAD (``insightray train retriever``)."""

from insightray.training.retriever.trainer import (
    RetrieverTrainConfig,
    document_split,
    fine_tune_retriever,
    retrieval_scores,
    train_retriever,
)

__all__ = [
    "RetrieverTrainConfig",
    "document_split",
    "fine_tune_retriever",
    "retrieval_scores",
    "train_retriever",
]
