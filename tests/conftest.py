"""Shared fixtures: the real data in ../shared/data, found through INSIGHTRAY_DATA."""

from __future__ import annotations

from pathlib import Path

import pytest

from insightray.config import data_root


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The shared medical data folder; tests that need it skip when it is absent."""
    root = data_root()
    if not root.is_dir():
        pytest.skip(f"shared data not found at {root}: set INSIGHTRAY_DATA")
    return root
