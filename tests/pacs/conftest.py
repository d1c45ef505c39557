"""Fixtures of the PACS tests: one real Orthanc for the session."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.pacs.orthanc import Orthanc, orthanc_installed, run_orthanc

if TYPE_CHECKING:
    from insightray.pacs.vault import Vault


@pytest.fixture(scope="session")
def orthanc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Orthanc]:
    """Orthanc with a throwaway storage folder and the DICOMweb plugin, stopped after."""
    if not orthanc_installed():
        pytest.skip("Orthanc not installed: apt-get install orthanc orthanc-dicomweb (make test)")
    with run_orthanc(tmp_path_factory.mktemp("orthanc")) as server:
        yield server


@pytest.fixture(scope="session")
def chest(shared_data: Path) -> Path:
    """The real chest CR every PACS test sends (no frame of reference, uncompressed)."""
    path = shared_data / "dicom" / "cr_chest_RG1_UNCI.dcm"
    if not path.is_file():
        pytest.skip("cr_chest_RG1_UNCI.dcm not found")
    return path


@pytest.fixture
def vault(tmp_path: Path) -> Vault:
    """A vault over ``tmp_path/inbox`` sealing with a fresh key ring (the service's class)."""
    import secrets

    from insightray.pacs.vault import Vault
    from insightray.serving.storage.crypto import KeyRing

    return Vault(tmp_path / "inbox", KeyRing([secrets.token_bytes(32)]), b"test site salt")
