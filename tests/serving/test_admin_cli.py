"""``insightray users`` / ``audit`` / ``keys`` on a real data directory."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import update
from typer.testing import CliRunner

from insightray.cli.common import app
from insightray.errors import WeakPasswordError
from insightray.serving.security.users import authenticate, authenticate_api_key
from insightray.serving.settings import ServeSettings
from insightray.serving.storage.blobstore import BlobStore
from insightray.serving.storage.crypto import KeyRing
from insightray.serving.storage.db import AuditRecord, Database

PASSWORD = "a long admin passphrase"


@pytest.fixture
def env(serve_settings: ServeSettings) -> dict[str, str]:
    return {
        "INSIGHTRAY_HOME": str(serve_settings.home),
        "INSIGHTRAY_DATABASE_URL": serve_settings.database_url,
    }


def test_users_create_api_key_and_audit_verify(
    env: dict[str, str], serve_settings: ServeSettings
) -> None:
    runner = CliRunner()
    created = runner.invoke(
        app,
        ["users", "create", "admin", "--role", "admin", "--password-stdin"],
        input=PASSWORD + "\n",
        env=env,
    )
    assert created.exit_code == 0, created.output
    assert "created user admin (admin)" in created.output and PASSWORD not in created.output
    keyed = runner.invoke(app, ["users", "api-key", "admin"], env=env)
    assert keyed.exit_code == 0
    key = keyed.stdout.strip().splitlines()[-1]
    db = Database(serve_settings.database_url)
    assert authenticate(db, "admin", PASSWORD) is not None
    assert authenticate_api_key(db, key) is not None
    verified = runner.invoke(app, ["audit", "verify"], env=env)
    assert verified.exit_code == 0 and "intact: 2 records" in verified.output
    weak = runner.invoke(
        app,
        ["users", "create", "bob", "--role", "clinician", "--password-stdin"],
        input="short\n",
        env=env,
    )
    assert isinstance(weak.exception, WeakPasswordError)
    with db.session() as session:
        session.execute(update(AuditRecord).where(AuditRecord.seq == 1).values(actor="x"))
    db.close()
    broken = runner.invoke(app, ["audit", "verify"], env=env)
    assert broken.exit_code == 1 and "broken at record 1" in broken.output


def test_keys_rotate_rewraps_the_store(tmp_path: Path) -> None:
    settings = ServeSettings(home=tmp_path / "home")
    settings.ensure_dirs()
    store = BlobStore(settings.store_dir, KeyRing.from_settings(settings))
    names = [store.put(b"one"), store.put(b"two")]
    old = store.keyring.primary_id
    result = CliRunner().invoke(
        app, ["keys", "rotate"], env={"INSIGHTRAY_HOME": str(settings.home)}
    )
    assert result.exit_code == 0 and "re-encrypted 2 blobs" in result.output
    ring = KeyRing.from_settings(settings)
    assert ring.primary_id != old
    assert {KeyRing.blob_key_id(store.path(n).read_bytes()) for n in names} == {ring.primary_id}


@pytest.mark.slow
def test_the_installed_command_exits_non_zero_with_one_line(tmp_path: Path) -> None:
    env = {**os.environ, "INSIGHTRAY_HOME": str(tmp_path / "home")}
    env.pop("INSIGHTRAY_DATABASE_URL", None)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "insightray.cli",
            "users",
            "create",
            "bob",
            "--role",
            "clinician",
            "--password-stdin",
        ],
        input="short\n",
        capture_output=True,
        text=True,
        timeout=180,
        env=env,
    )
    assert result.returncode == 2
    assert "fewer than 12 characters" in result.stderr and "Traceback" not in result.stderr
