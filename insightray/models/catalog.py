"""Where trained models are found: bundled models, model folders and model card files.

Every trained model is a folder holding ``card.json`` (a :class:`~insightray.models.ModelCard`)
and its weights. Models that ship with Insight Ray live in ``insightray/weights/<name>/``.
A ``--model NAME_OR_PATH`` option names a card file, a model folder or a bundled name.

Example:
    >>> resolve_card(None, default="no-such-model")  # doctest: +IGNORE_EXCEPTION_DETAIL
    Traceback (most recent call last):
    insightray.errors.InputNotFoundError: no-such-model: no model of this name is bundled yet...
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from insightray.errors import InputNotFoundError

CARD_FILE = "card.json"


def bundled_models_dir() -> Path:
    """The package folder that holds the bundled models."""
    return Path(__file__).resolve().parents[1] / "weights"


def bundled_models() -> list[str]:
    """Names of the bundled models (folders of ``insightray/weights`` with a card)."""
    return sorted(card.parent.name for card in bundled_models_dir().glob(f"*/{CARD_FILE}"))


def resolve_card(name_or_path: str | Path | None, *, default: str) -> Path:
    """Return the card path that a ``--model`` value names, or the default model's card.

    Args:
        name_or_path: A card ``.json`` file, a folder holding ``card.json``, a bundled model
            name, or ``None`` for ``default``.
        default: The bundled model used when nothing is named.

    Raises:
        InputNotFoundError: Nothing of that name exists, or the default is not bundled.
    """
    chosen = str(name_or_path) if name_or_path is not None else default
    path = Path(chosen)
    if path.suffix == ".json" and path.is_file():
        return path
    if path.is_dir() and (path / CARD_FILE).is_file():
        return path / CARD_FILE
    bundled = bundled_models_dir() / chosen / CARD_FILE
    if "/" not in chosen and bundled.is_file():
        return bundled
    if name_or_path is None:
        raise InputNotFoundError(
            default,
            "no model of this name is bundled yet",
            "train one (see `insightray train --help`) or pass --model",
        )
    known = ", ".join(bundled_models()) or "none"
    raise InputNotFoundError(
        chosen,
        "no model card, model folder or bundled model of that name",
        f"pass a card .json, a folder holding card.json, or a bundled name ({known})",
    )


def sha256_file(path: str | Path) -> str:
    """Hex SHA-256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
