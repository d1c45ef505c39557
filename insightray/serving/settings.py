"""Service settings: one frozen object, read from ``INSIGHTRAY_*`` environment variables.

Every field ``name`` can be set with ``INSIGHTRAY_<NAME>`` (``INSIGHTRAY_DATABASE_URL``,
``INSIGHTRAY_REDIS_URL``, ``INSIGHTRAY_RATE_PER_S``, ``INSIGHTRAY_DEIDENTIFY=0`` ...). The data
directory ``home`` holds the SQLite database, the encrypted ``store/`` and ``keys/``; it is
created on first use by :meth:`ServeSettings.ensure_dirs`.

Example:
    >>> settings = ServeSettings.from_env(home=Path("/tmp/ir-doc"), rate_per_s=5)
    >>> settings.database_url, settings.keys_dir.name, settings.rate_per_s
    ('sqlite:////tmp/ir-doc/insightray.db', 'keys', 5.0)
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from insightray.config import insightray_home
from insightray.errors import ConfigError

__all__ = ["OOD_ACTIONS", "ServeSettings", "available_cpus"]

#: What the service may do with an out-of-distribution image (see ``ood_action``).
OOD_ACTIONS = ("flag", "refuse")
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def available_cpus() -> int:
    """CPU cores this process may use (respects affinity masks, e.g. in containers)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def _default_inference_threads() -> int:
    """Parallel inference workers: one on small machines, up to 8 on large servers."""
    return max(1, min(8, available_cpus() // 4))


def _default_torch_threads() -> int:
    """Torch threads per worker, so that workers x threads fills the cores once."""
    return max(1, available_cpus() // _default_inference_threads())


@dataclass(frozen=True)
class ServeSettings:
    """Everything the service needs to start.

    Attributes:
        home: The data directory (database, ``store/``, ``keys/``).
        database_url: SQLAlchemy URL; empty means ``sqlite:///<home>/insightray.db``.
        data_key: Base64 AES-256 key(s) for data at rest (comma-separated, primary last);
            ``None`` reads or creates ``<home>/keys/data.key``.
        token_ttl_s: Lifetime of issued JWTs in seconds.
        max_upload_bytes: Largest accepted upload.
        max_image_pixels: Largest accepted image (rows x columns x samples), checked from
            the header before any pixel is decoded: larger uploads and OIP tensors answer
            413. The default, 40 megapixels, is above the largest radiographs (a 4096 x
            5625 mammogram is 23 megapixels).
        deidentify: De-identify DICOM uploads on ingest (PS3.15 Basic Profile).
        pseudonym_map: Keep an encrypted patient-ID -> pseudonym mapping.
        redis_url: Share rate limits through Redis (``redis://host:6379/0``).
        rate_per_s: Sustained requests per second per user or API key.
        rate_burst: Requests allowed at once before the rate applies.
        batch_max_size: Largest dynamic batch for the image models.
        batch_max_delay_ms: Longest wait for a batch to fill.
        cache_entries: Result cache size (entries).
        inference_threads: Parallel inference workers.
        torch_threads: Torch intra-op threads per worker.
        ood_action: What to do with an image the out-of-distribution guard warns about:
            ``flag`` (answer, with the warnings and ``ood_score`` in the result) or ``refuse``
            (answer 422 ``OutOfDistributionError`` naming the warnings).
        conversation_ttl_s: An assistant conversation idle this long is deleted (audited).
        index_on_start: With no knowledge index yet, build it (MedQuAD from the shared
            data) in the background at start-up; the assistant answers "preparing, N %"
            meanwhile. Off by default so that test and CI services never start a build.
        pacs_dicomweb_url: The PACS's DICOMweb root (``http://pacs:8042/dicom-web``) that
            the admin routes ``/v1/pacs/...`` search and pull from; ``None``: those routes
            answer 503. The service talks to this PACS only (no URL is taken from requests).
        pacs_routing: The routing file (:mod:`insightray.pacs.routing`) that decides what
            a pulled study is analysed with and where its SRs go (point it at the same PACS);
            ``None``: ``POST /v1/pacs/pull`` answers 503.
        retrain_window: How many of a model version's most recent judged findings (readers'
            accept / reject / correct verdicts) the retraining trigger looks at; it stays
            silent until there are that many.
        retrain_agreement: The retraining trigger fires (an audited ``retraining.trigger``
            event and the ``insightray_retraining_triggers_total`` metric) when the share of
            accepted findings among the last ``retrain_window`` falls below this, once per
            crossing; ``0`` turns it off. A policy value set by the site, not fitted to data.
        drift_window: Images each image model version keeps in its rolling drift window
            (numeric features only: image statistics, DICOM categories, embedding, outputs);
            ``0`` turns the window off. The window lives in the process: each replica has
            its own.
        drift_min_images: Images a window needs before it is first compared with the
            model's reference profile.
        drift_every: New images between two comparisons (each about a second of one CPU
            core, in a background thread; ``/metrics`` reads the last one).
        retrain_on_drift: The retraining trigger also fires (``retraining.trigger`` with
            outcome ``drift``) when a window's comparison turns to drift, and re-arms when
            it clears.
    """

    home: Path
    database_url: str = ""
    data_key: str | None = field(default=None, repr=False)
    token_ttl_s: int = 3600
    max_upload_bytes: int = 64 * 1024 * 1024
    max_image_pixels: int = 40_000_000
    deidentify: bool = True
    pseudonym_map: bool = False
    redis_url: str | None = None
    rate_per_s: float = 20.0
    rate_burst: int = 40
    batch_max_size: int = 8
    batch_max_delay_ms: float = 10.0
    cache_entries: int = 256
    inference_threads: int = field(default_factory=_default_inference_threads)
    torch_threads: int = field(default_factory=_default_torch_threads)
    ood_action: str = "flag"
    conversation_ttl_s: int = 1800
    index_on_start: bool = False
    pacs_dicomweb_url: str | None = None
    pacs_routing: Path | None = None
    retrain_window: int = 50
    retrain_agreement: float = 0.8
    drift_window: int = 200
    drift_min_images: int = 50
    drift_every: int = 25
    retrain_on_drift: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "home", Path(self.home).expanduser())
        if self.pacs_routing is not None:
            object.__setattr__(self, "pacs_routing", Path(self.pacs_routing).expanduser())
        if not self.database_url:
            url = f"sqlite:///{self.home / 'insightray.db'}"
            object.__setattr__(self, "database_url", url)
        positive = ("token_ttl_s", "max_upload_bytes", "max_image_pixels", "rate_burst")
        for name in (*positive, "batch_max_size", "conversation_ttl_s", "retrain_window"):
            if getattr(self, name) < 1:
                raise ConfigError(name, "must be at least 1", f"set INSIGHTRAY_{name.upper()}")
        if self.rate_per_s <= 0 or self.batch_max_delay_ms < 0 or self.cache_entries < 0:
            raise ConfigError("rate/batch settings", "must not be negative", "check the values")
        if self.inference_threads < 1 or self.torch_threads < 1:
            raise ConfigError("threads", "must be at least 1", "set a positive thread count")
        if not 0.0 <= self.retrain_agreement <= 1.0:
            raise ConfigError(
                "retrain_agreement", "must lie between 0 and 1", "set INSIGHTRAY_RETRAIN_AGREEMENT"
            )
        if self.drift_window and not (
            2 <= self.drift_min_images <= self.drift_window and self.drift_every >= 1
        ):
            raise ConfigError(
                "drift window",
                f"window {self.drift_window}, minimum {self.drift_min_images}, "
                f"every {self.drift_every}",
                "set 2 <= INSIGHTRAY_DRIFT_MIN_IMAGES <= INSIGHTRAY_DRIFT_WINDOW and "
                "INSIGHTRAY_DRIFT_EVERY >= 1 (INSIGHTRAY_DRIFT_WINDOW=0 turns it off)",
            )
        if self.ood_action not in OOD_ACTIONS:
            raise ConfigError(
                f"ood_action {self.ood_action!r}", "unknown action", "set flag or refuse"
            )

    @property
    def keys_dir(self) -> Path:
        """Secrets: ``data.key``, ``jwt.key``, ``deid.salt`` (mode 0700)."""
        return self.home / "keys"

    @property
    def pacs_dir(self) -> Path:
        """The PACS work folder: sealed ``inbox/`` and ``outbox/``, ``audit.jsonl``."""
        return self.home / "pacs"

    @property
    def store_dir(self) -> Path:
        """The encrypted content-addressed blob store."""
        return self.home / "store"

    @property
    def audit_anchor(self) -> Path:
        """The file remembering the newest audit record.

        See :mod:`~insightray.serving.security.audit`.
        """
        return self.keys_dir / "audit.anchor"

    @classmethod
    def from_env(cls, **overrides: Any) -> ServeSettings:
        """Settings from ``INSIGHTRAY_*`` variables; keyword overrides win over both.

        Raises:
            ConfigError: A variable cannot be parsed (the message names it).
        """
        values: dict[str, Any] = {}
        for spec in fields(cls):
            if spec.name in overrides:
                values[spec.name] = overrides.pop(spec.name)
                continue
            variable = f"INSIGHTRAY_{spec.name.upper()}"
            raw = os.environ.get(variable)
            if raw is not None and raw.strip() != "":
                values[spec.name] = _parse(variable, raw.strip(), str(spec.type))
        if overrides:
            raise ConfigError(", ".join(sorted(overrides)), "unknown settings", "check the names")
        values.setdefault("home", insightray_home())
        if isinstance(values.get("rate_per_s"), int):
            values["rate_per_s"] = float(values["rate_per_s"])
        return cls(**values)

    def ensure_dirs(self) -> None:
        """Create the data directory tree (``keys/`` readable by the owner only)."""
        for folder in (self.home, self.store_dir, self.keys_dir):
            folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.keys_dir.chmod(0o700)


def _parse(variable: str, raw: str, type_name: str) -> Any:
    """Parse one environment value by the field's annotation."""
    try:
        if type_name == "bool":
            if raw.lower() in _TRUE | _FALSE:
                return raw.lower() in _TRUE
            raise ValueError(raw)
        if type_name == "int":
            return int(raw)
        if type_name == "float":
            return float(raw)
        if type_name in ("Path", "Path | None"):
            return Path(raw)
        return raw
    except ValueError as error:
        raise ConfigError(variable, f"cannot read it as {type_name}", "fix the value") from error
