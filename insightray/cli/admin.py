"""Service administration verbs: ``users create``, ``users api-key``, ``audit verify`` and
``keys rotate``. They work on the data directory ``$INSIGHTRAY_HOME`` and the database
``$INSIGHTRAY_DATABASE_URL`` (default: SQLite in the data directory), creating both on
first use.

Example:
    echo 'a long admin passphrase' | insightray users create admin --role admin --password-stdin
    insightray users api-key pacs-bridge      # prints the key once
    insightray audit verify                   # exit 0 when the chain is intact
    insightray keys rotate                    # new data key, stored blobs re-encrypted
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Annotated

import typer

from insightray.cli.common import app, err, out

if TYPE_CHECKING:
    from insightray.serving.settings import ServeSettings
    from insightray.serving.storage.db import Database

users_app = typer.Typer(help="Manage service users and API keys.", no_args_is_help=True)
audit_app = typer.Typer(help="Check the service's audit trail.", no_args_is_help=True)
keys_app = typer.Typer(help="Manage the keys that encrypt stored data.", no_args_is_help=True)
app.add_typer(users_app, name="users")
app.add_typer(audit_app, name="audit")
app.add_typer(keys_app, name="keys")


def _open() -> tuple[ServeSettings, Database]:
    from insightray.serving.settings import ServeSettings
    from insightray.serving.storage.db import Database

    settings = ServeSettings.from_env()
    return settings, Database.open(settings)


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    password: str = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    return password


@users_app.command("create")
def users_create(
    username: Annotated[str, typer.Argument(help="Login name (letters, digits, . _ -).")],
    role: Annotated[str, typer.Option("--role", help="clinician, researcher, admin or auditor.")],
    password_stdin: Annotated[
        bool,
        typer.Option("--password-stdin", help="Read the password from standard input."),
    ] = False,
) -> None:
    """Create a user (the password needs at least 12 characters; there is no default)."""
    from insightray.serving.security.audit import AuditLog
    from insightray.serving.security.users import create_user

    settings, db = _open()
    try:
        user = create_user(db, username, role, _read_password(password_stdin))
        AuditLog(db, settings.audit_anchor).append("cli", "admin", "user.create", outcome="ok")
    finally:
        db.close()
    out.print(f"created user {user.username} ({user.role})", highlight=False)


@users_app.command("api-key")
def users_api_key(
    username: Annotated[str, typer.Argument(help="The user who owns the key.")],
) -> None:
    """Create an API key for a machine client; it is printed once and cannot be shown again."""
    from insightray.serving.security.audit import AuditLog
    from insightray.serving.security.users import create_api_key

    settings, db = _open()
    try:
        key = create_api_key(db, username)
        AuditLog(db, settings.audit_anchor).append("cli", "admin", "apikey.create", outcome="ok")
    finally:
        db.close()
    err.print("Store this key now; it is not shown again. Send it as the X-API-Key header.")
    print(key)


@audit_app.command("verify")
def audit_verify() -> None:
    """Check the hash chain; exit 0 when intact, 1 naming the first bad record otherwise."""
    from insightray.serving.security.audit import AuditLog

    settings, db = _open()
    try:
        verdict = AuditLog(db, settings.audit_anchor).verify()
    finally:
        db.close()
    if verdict.ok:
        out.print(f"audit chain intact: {verdict.checked} records", highlight=False)
        return
    err.print(
        f"[red]audit chain broken at record {verdict.first_bad_seq}:[/red] {verdict.reason} "
        f"({verdict.checked} records before it verified)",
        highlight=False,
    )
    raise typer.Exit(1)


@keys_app.command("rotate")
def keys_rotate(
    rewrap_only: Annotated[
        bool,
        typer.Option(
            "--rewrap-only",
            help="Only re-encrypt blobs with the current primary key (after changing "
            "INSIGHTRAY_DATA_KEY).",
        ),
    ] = False,
) -> None:
    """Add a new primary data key and re-encrypt every stored blob with it."""
    from insightray.serving.settings import ServeSettings
    from insightray.serving.storage.blobstore import BlobStore
    from insightray.serving.storage.crypto import KeyRing

    settings = ServeSettings.from_env()
    settings.ensure_dirs()
    keyring = KeyRing.from_settings(settings)
    if not rewrap_only:
        new_id = keyring.rotate()
        out.print(f"new primary data key {new_id}", highlight=False)
    count = BlobStore(settings.store_dir, keyring).rewrap()
    out.print(
        f"re-encrypted {count} blobs with key {keyring.primary_id}; retire an older key only "
        "after a --rewrap-only run reports 0",
        highlight=False,
    )
