"""``insightray pacs listen|pull|push``: DICOM networking with a PACS (needs insightray[pacs]).

Arrivals are de-identified and encrypted on ingest with the service's data key and site salt
(``$INSIGHTRAY_HOME/keys``, or ``INSIGHTRAY_DATA_KEY``), as uploads are; SRs go back to the
PACS with the original identifiers restored in memory only (:mod:`insightray.pacs.vault`).

Example:
    insightray pacs listen --rules routing.yaml --port 11112 --allow ORTHANC
    insightray pacs pull --study 1.2.3 --from http://127.0.0.1:8042/dicom-web --rules routing.yaml
    insightray pacs push out/*.sr.dcm --dicomweb http://127.0.0.1:8042/dicom-web
    insightray pacs retry 0123456789abcdef --rules routing.yaml
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from insightray.cli.common import app, err
from insightray.errors import ConfigError

if TYPE_CHECKING:
    from insightray.pacs.pipeline import Analyst, Outcome
    from insightray.pacs.vault import Vault

pacs_app = typer.Typer(help="Exchange studies and results with a PACS.", no_args_is_help=True)
app.add_typer(pacs_app, name="pacs")

RulesOption = Annotated[
    Path, typer.Option("--rules", help="Routing rules (YAML): match, model, destination.")
]
WorkOption = Annotated[
    Path,
    typer.Option(
        "--work", help="Folder for inbox/ and outbox/ (encrypted, de-identified) and audit.jsonl."
    ),
]


def _vault(work: Path) -> Vault:
    """The work folder's vault, sealing with the service's data key and site salt."""
    from insightray.pacs.vault import Vault
    from insightray.serving.settings import ServeSettings
    from insightray.serving.storage.crypto import KeyRing
    from insightray.serving.storage.pseudonyms import site_salt

    settings = ServeSettings.from_env()
    settings.ensure_dirs()
    work.mkdir(mode=0o700, parents=True, exist_ok=True)
    return Vault(work / "inbox", KeyRing.from_settings(settings), site_salt(settings.keys_dir))


def _analyst(rules: Path, work: Path, aet: str, vault: Vault) -> Analyst:
    from insightray.pacs.pipeline import Analyst
    from insightray.pacs.routing import load_routing

    return Analyst(
        load_routing(rules),
        vault,
        outbox=work / "outbox",
        audit_log=work / "audit.jsonl",
        calling_aet=aet,
    )


def _print(outcome: Outcome) -> None:
    print(json.dumps(asdict(outcome)), flush=True)


@pacs_app.command("listen")
def listen(
    rules: RulesOption,
    allow: Annotated[
        list[str], typer.Option("--allow", help="Calling AE title allowed to send (repeat).")
    ],
    port: Annotated[int, typer.Option(help="TCP port.", min=1, max=65535)] = 11112,
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    aet: Annotated[str, typer.Option("--aet", help="This node's AE title.")] = "INSIGHTRAY",
    work: WorkOption = Path("pacs-work"),
    seconds: Annotated[
        float | None, typer.Option("--seconds", help="Stop after this long (default: Ctrl+C).")
    ] = None,
    tls_cert: Annotated[
        Path | None, typer.Option("--tls-cert", help="Accept DICOM over TLS only (PEM).")
    ] = None,
    tls_key: Annotated[Path | None, typer.Option("--tls-key", help="Its key (PEM).")] = None,
    tls_ca: Annotated[
        Path | None, typer.Option("--tls-ca", help="Require senders' certificates from this CA.")
    ] = None,
) -> None:
    """Receive studies by C-STORE, analyse them by the routing rules and send SRs back.

    Arrivals are de-identified and encrypted on ingest (keys from INSIGHTRAY_HOME).

    SRs leave with the original identifiers restored. One JSON line per received instance.
    """
    from insightray.pacs.dimse import tls_context
    from insightray.pacs.listener import Listener

    tls = None
    if tls_cert is not None or tls_ca is not None:
        tls = tls_context(server=True, certificate=tls_cert, key=tls_key, ca=tls_ca)
    vault = _vault(work)
    listener = Listener(
        _analyst(rules, work, aet, vault),
        vault,
        host=host,
        port=port,
        ae_title=aet,
        allowed=allow,
        on_outcome=_print,
        tls=tls,
    )
    listener.start()
    err.print(f"listening as {aet} on {host}:{port}; Ctrl+C stops", highlight=False)
    deadline = None if seconds is None else time.monotonic() + seconds
    try:
        while deadline is None or time.monotonic() < deadline:
            time.sleep(0.2)
    except KeyboardInterrupt:
        pass
    finally:
        listener.stop()


@pacs_app.command("pull")
def pull(
    study: Annotated[str, typer.Option("--study", help="Study Instance UID to retrieve.")],
    source: Annotated[str, typer.Option("--from", help="The PACS's DICOMweb root URL.")],
    rules: RulesOption,
    aet: Annotated[str, typer.Option("--aet", help="AE title for C-STORE results.")] = "INSIGHTRAY",
    work: WorkOption = Path("pacs-work"),
) -> None:
    """Retrieve a study by WADO-RS, analyse it by the routing rules and send SRs back.

    Instances are de-identified and encrypted on ingest (keys from INSIGHTRAY_HOME).

    SRs leave with the original identifiers restored. One JSON line per instance.
    """
    from insightray.pacs.dicomweb import DicomWeb

    for outcome in _analyst(rules, work, aet, _vault(work)).pull(DicomWeb(source), study):
        _print(outcome)


@pacs_app.command("retry")
def retry(
    dead_letter: Annotated[
        str, typer.Argument(help="The dead letter's folder name (a 16-digit hash).")
    ],
    rules: RulesOption,
    aet: Annotated[str, typer.Option("--aet", help="AE title for C-STORE results.")] = "INSIGHTRAY",
    work: WorkOption = Path("pacs-work"),
) -> None:
    """Analyse a dead letter again and send its SR back; a new failure dead-letters it anew."""
    _print(_analyst(rules, work, aet, _vault(work)).retry(dead_letter))


@pacs_app.command("push")
def push(
    files: Annotated[list[Path], typer.Argument(help="DICOM files (SRs, images) to send.")],
    dicomweb: Annotated[
        str | None, typer.Option("--dicomweb", help="Store by STOW-RS to this DICOMweb root.")
    ] = None,
    cstore: Annotated[
        str | None, typer.Option("--cstore", help="C-STORE to HOST:PORT:AET.")
    ] = None,
    aet: Annotated[str, typer.Option("--aet", help="Calling AE title for C-STORE.")] = "INSIGHTRAY",
    tls: Annotated[bool, typer.Option("--tls", help="C-STORE over DICOM TLS.")] = False,
    tls_ca: Annotated[
        Path | None, typer.Option("--tls-ca", help="Trust this CA for --tls (PEM).")
    ] = None,
) -> None:
    """Send DICOM files to a PACS by STOW-RS or C-STORE (optionally over DICOM TLS)."""
    from insightray.imaging.dicom import read_dataset
    from insightray.pacs.dicomweb import DicomWeb
    from insightray.pacs.dimse import send_cstore, tls_context

    if (dicomweb is None) == (cstore is None):
        raise ConfigError("pacs push", "give exactly one of --dicomweb or --cstore", "pick one")
    datasets = [read_dataset(path) for path in files]
    if dicomweb is not None:
        stored = len(DicomWeb(dicomweb).store(datasets))
    else:
        host, _, rest = str(cstore).partition(":")
        port, _, called = rest.partition(":")
        if not (host and port.isdigit() and called):
            raise ConfigError("--cstore", f"{cstore!r} is not HOST:PORT:AET", "fix it")
        context = tls_context(server=False, ca=tls_ca) if tls or tls_ca else None
        stored = send_cstore(
            datasets, host=host, port=int(port), called_aet=called, calling_aet=aet, tls=context
        )
    err.print(f"stored {stored} of {len(datasets)}", highlight=False)
