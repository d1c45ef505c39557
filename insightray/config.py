"""Process-wide settings read from the environment (never at import time)."""

from __future__ import annotations

import os
from pathlib import Path

#: The repository root when Insight Ray runs from a checkout (editable install).
_CHECKOUT_ROOT = Path(__file__).resolve().parents[1]


def data_root() -> Path:
    """Where the shared medical data lives: ``$INSIGHTRAY_DATA``, else ``../shared/data``.

    The default is looked up beside the checkout first, then beside the working directory.
    """
    configured = os.environ.get("INSIGHTRAY_DATA")
    if configured:
        return Path(configured)
    beside_checkout = _CHECKOUT_ROOT.parent / "shared" / "data"
    return beside_checkout if beside_checkout.is_dir() else Path("../shared/data")


def insightray_home() -> Path:
    """The data directory: ``$INSIGHTRAY_HOME``, else ``$XDG_DATA_HOME/insightray``, else
    ``~/.local/share/insightray`` (not created here)."""
    configured = os.environ.get("INSIGHTRAY_HOME")
    if configured:
        return Path(configured).expanduser()
    xdg = os.environ.get("XDG_DATA_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".local" / "share"
    return base / "insightray"
