"""The ``insightray`` command line: every verb is a thin call into the library.

Each module registers its verbs on the shared app: ``imaging`` (info, convert, demo) and
``detect`` (detect, train detect, evaluate detect, export detect).
"""

from __future__ import annotations

import os
import sys

import insightray.cli.assistant  # noqa: F401  (registers ask, chat, index build)
from insightray.cli import (  # noqa: F401  (each module registers its verbs)
    admin,
    calibrate,
    demo,
    detect,
    federated,
    fracture,
    fracture_ensemble,
    imaging,
    label,
    monitor,
    ner,
    nlp,
    optimize,
    optimize_fracture,
    optimize_text,
    pacs,
    pretrain,
    report,
    serve,
)
from insightray.cli.common import app, err
from insightray.errors import InsightRayError

__all__ = ["app", "main"]


def main() -> None:
    """Console entry point: user errors are one line and a non-zero exit, never a traceback."""
    try:
        app()
    except InsightRayError as error:
        err.print(f"[red]error:[/red] {error}", highlight=False, soft_wrap=True)
        sys.exit(error.exit_code)
    except KeyboardInterrupt:
        err.print("interrupted")
        sys.exit(130)
    except Exception as error:  # a bug: say so in one line unless debugging is asked for
        if os.environ.get("INSIGHTRAY_DEBUG"):
            raise
        err.print(
            f"[red]internal error:[/red] {type(error).__name__}. Please report it; "
            "set INSIGHTRAY_DEBUG=1 to see the traceback.",
            highlight=False,
        )
        sys.exit(70)
