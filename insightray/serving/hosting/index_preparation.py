"""Build the assistant's knowledge index in the background on the service's first start.

One replica builds (it holds ``<index>.building``, created exclusively); it writes its
progress there as JSON, so every replica on the same data directory reports the same
"preparing, N %". The progress is also logged. When the build ends the lock is removed and
the index loads on the next question.

Example:
    >>> preparation = IndexPreparation(Path("/tmp/ir/index"))  # doctest: +SKIP
    >>> preparation.start()  # doctest: +SKIP
    >>> preparation.percent()  # doctest: +SKIP
    12
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from insightray.errors import ServiceUnavailableError

__all__ = ["IndexPreparation", "IndexPreparingError"]

log = logging.getLogger(__name__)


class IndexPreparingError(ServiceUnavailableError):
    """The knowledge index is being built; ``percent`` says how far."""

    def __init__(self, percent: int) -> None:
        super().__init__(
            "assistant",
            f"the knowledge index is being prepared ({percent} %)",
            "ask again in a few minutes",
        )
        self.percent = percent


class IndexPreparation:
    """Builds the index in ``index_dir`` from ``sources`` in a daemon thread.

    Args:
        index_dir: Where the index goes.
        sources: The knowledge (default: MedQuAD in the shared data).
        threads: Torch threads for encoding (default: every core).
    """

    def __init__(
        self,
        index_dir: Path,
        sources: Sequence[Path] | None = None,
        threads: int | None = None,
    ) -> None:
        self.index_dir = index_dir
        self.sources = list(sources) if sources else None
        self.threads = threads or os.cpu_count() or 1
        self.lock = index_dir.with_name(index_dir.name + ".building")
        self.error: str | None = None
        self._thread: threading.Thread | None = None

    def needed(self) -> bool:
        """No index yet, and the knowledge to build one is here."""
        from insightray.assistant.knowledge import default_knowledge_path

        if (self.index_dir / "manifest.json").is_file():
            return False
        return all(Path(s).exists() for s in (self.sources or [default_knowledge_path()]))

    def start(self) -> bool:
        """Start building unless another replica is; whether this one builds."""
        if not self.needed():
            return False
        self.lock.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(self.lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
        except FileExistsError:
            return False  # another replica builds; its progress is in the lock file
        os.close(fd)
        self._write(0, 0)
        self._thread = threading.Thread(target=self._build, name="index-build", daemon=True)
        self._thread.start()
        return True

    def building(self) -> bool:
        """Whether some replica is building the index now (a lock left by a process of
        this machine that has died is removed)."""
        try:
            data = json.loads(self.lock.read_text())
        except FileNotFoundError:
            return False
        except (OSError, ValueError):
            return True  # being written
        if data.get("host") == os.uname().nodename and not _alive(int(data.get("pid", 0))):
            self.lock.unlink(missing_ok=True)
            return False
        return True

    def percent(self) -> int:
        """How far the build is, 0 to 100 (0 when unknown)."""
        try:
            data = json.loads(self.lock.read_text())
            return int(100 * data["done"] / data["total"]) if data.get("total") else 0
        except (OSError, ValueError, KeyError):
            return 0

    def check(self) -> None:
        """Raise :class:`IndexPreparingError` while a build is under way."""
        if self.building():
            raise IndexPreparingError(self.percent())

    def _write(self, done: int, total: int) -> None:
        temporary = self.lock.with_suffix(".tmp")
        owner = {"pid": os.getpid(), "host": os.uname().nodename}
        temporary.write_text(json.dumps({"done": done, "total": total, **owner}))
        temporary.replace(self.lock)

    def _build(self) -> None:
        from insightray.assistant.index import IndexConfig, build_index

        log.info("building the knowledge index in %s (%d threads)", self.index_dir, self.threads)
        try:
            default = IndexConfig()
            config = replace(default, embedder=replace(default.embedder, num_threads=self.threads))
            build_index(self.sources, self.index_dir, config, progress=False,
                        on_progress=self._write)  # fmt: skip
            log.info("knowledge index ready in %s", self.index_dir)
        except Exception as error:  # a failed build must not take the service down
            self.error = f"{type(error).__name__}: {error}"
            log.error("knowledge index build failed: %s", self.error)
        finally:
            self.lock.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
