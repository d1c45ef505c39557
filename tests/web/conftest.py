"""The real service in a subprocess and Debian's Chromium driven by Playwright.

Once per session: a temporary ``INSIGHTRAY_HOME``, a small knowledge index built from four
MedQuAD documents with ``insightray index build``, two users made with ``insightray users
create ... --password-stdin``, then ``insightray serve`` on a free loopback port, waited on
until ``/readyz`` answers. Each test gets a fresh browser context at 1280x800 that records
every request the page makes. Screenshots go to ``$INSIGHTRAY_WEB_SCREENSHOTS`` (default
``runs/web-screenshots/``, git-ignored).

Chromium is Debian's (``/usr/bin/chromium``, or ``$INSIGHTRAY_CHROMIUM``); Playwright never
downloads a browser. Without it the tests fail with the install command, unless
``INSIGHTRAY_SKIP_BROWSER=1`` skips them.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from playwright.sync_api import Browser, BrowserContext, Page, Playwright, sync_playwright

from tests.processes import stop_process

#: Flags for a headless, quiet Chromium that reaches nothing by itself.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]
READER = ("reader", "reading-room-passphrase-7")
NEWCOMER = ("newcomer", "newcomer-passphrase-42")
#: A clinician for the reading-tool tests (a worklist of their own) and a researcher, whose
#: role may not see identifying DICOM values.
RADIOLOGIST = ("radiologist", "light-box-passphrase-31")
ANALYST = ("analyst", "research-passphrase-58")
#: A clinician who judges the AI's findings, and an auditor who reads /metrics (Prometheus).
SECOND_READER = ("second-reader", "second-opinion-passphrase-19")
MONITOR = ("monitor", "prometheus-passphrase-23")
#: A clinician who walks the labelling queue (whose queue holds only that test's uploads).
LABELLER = ("labeller", "ground-truth-passphrase-64")
USERS = ((READER, "clinician"), (NEWCOMER, "clinician"), (RADIOLOGIST, "clinician"),
         (ANALYST, "researcher"), (SECOND_READER, "clinician"), (MONITOR, "auditor"),
         (LABELLER, "clinician"))  # fmt: skip
#: MedQuAD documents of the assistant's small index: gout, shingles, migraine, celiac disease.
KNOWLEDGE = (
    "MedQuAD/4_MPlus_Health_Topics_QA/0000409.xml",
    "MedQuAD/4_MPlus_Health_Topics_QA/0000812.xml",
    "MedQuAD/6_NINDS_QA/0000194.xml",
    "MedQuAD/3_GHR_QA/0000163.xml",
)
READY_TIMEOUT_S = 240.0
REPO = Path(__file__).resolve().parents[2]


@dataclass
class Service:
    """A running ``insightray serve``."""

    url: str
    home: Path
    log: Path

    def log_tail(self, lines: int = 40) -> str:
        text = self.log.read_text(errors="replace") if self.log.is_file() else ""
        return "\n".join(text.splitlines()[-lines:])


@dataclass
class RecordedPage:
    """A signed-out page plus every URL it requested."""

    page: Page
    requests: list[str] = field(default_factory=list)


def _cli() -> list[str]:
    script = Path(sys.executable).with_name("insightray")
    return [str(script)] if script.is_file() else [sys.executable, "-m", "insightray.cli"]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _run_all(commands: list[tuple[list[str], str | None]], env: dict[str, str]) -> None:
    """Run ``insightray`` commands (arguments, standard input) at once; fail on any error."""
    started = [
        (
            args,
            stdin,
            subprocess.Popen(
                [*_cli(), *args],
                env=env,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            ),
        )
        for args, stdin in commands
    ]
    for args, stdin, process in started:
        output, _ = process.communicate(stdin, timeout=600)
        if process.returncode != 0:
            pytest.fail(f"insightray {' '.join(args)} failed:\n{output}")


def _knowledge_subset(medquad: Path, target: Path) -> Path:
    with zipfile.ZipFile(medquad) as source, zipfile.ZipFile(target, "w") as subset:
        for name in KNOWLEDGE:
            subset.writestr(name, source.read(name))
    return target


def _wait_ready(url: str, process: subprocess.Popen[bytes], service: Service) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"insightray serve exited with {process.returncode}:\n{service.log_tail()}")
        try:
            if httpx.get(f"{url}/readyz", timeout=2.0).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    pytest.fail(f"insightray serve not ready after {READY_TIMEOUT_S:.0f} s:\n{service.log_tail()}")


@pytest.fixture(scope="session")
def service(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """``insightray serve`` on a fresh data directory, ready to take requests."""
    medquad = shared_data / "text" / "qa" / "medquad.zip"
    if not medquad.is_file():
        pytest.skip(f"MedQuAD not found at {medquad}")
    home = tmp_path_factory.mktemp("web-home")
    env = {k: v for k, v in os.environ.items() if not k.startswith("INSIGHTRAY_")}
    env["INSIGHTRAY_HOME"] = str(home)
    env["INSIGHTRAY_DEBUG"] = "1"  # a failing set-up command shows its traceback
    if "INSIGHTRAY_DATA" in os.environ:
        env["INSIGHTRAY_DATA"] = os.environ["INSIGHTRAY_DATA"]
    knowledge = _knowledge_subset(medquad, home.parent / "medquad-web.zip")
    _run_all(
        [
            (["index", "build", "--data", str(knowledge), "--threads", "1"], None),
            *(
                (["users", "create", name, "--role", role, "--password-stdin"], password)
                for (name, password), role in USERS
            ),
        ],
        env,
    )
    yield from serve(home, env)


def serve(home: Path, env: dict[str, str]) -> Iterator[Service]:
    """Run ``insightray serve`` on a free loopback port with ``env``, ready to take requests,
    until the generator is closed (the fixtures ``yield from`` it)."""
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    log = home / "serve.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [*_cli(), "serve", "--host", "127.0.0.1", "--port", str(port)],
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    running = Service(url, home, log)
    try:
        _wait_ready(url, process, running)
        yield running
    finally:
        stop_process(process)


@pytest.fixture(scope="session")
def docs_images() -> Path:
    """Where the documentation's screenshots go: ``docs/images`` when
    ``INSIGHTRAY_DOCS_IMAGES=1`` (to refresh them), else beside the other screenshots."""
    if os.environ.get("INSIGHTRAY_DOCS_IMAGES") == "1":
        return REPO / "docs" / "images"
    folder = Path(os.environ.get("INSIGHTRAY_WEB_SCREENSHOTS", REPO / "runs" / "web-screenshots"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture(scope="session")
def screenshots() -> Path:
    """Where each step's screenshot goes (``$INSIGHTRAY_WEB_SCREENSHOTS``)."""
    folder = Path(os.environ.get("INSIGHTRAY_WEB_SCREENSHOTS", REPO / "runs" / "web-screenshots"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


# Package scope: the sync driver keeps an event loop running in this thread until it stops,
# which would break later tests (and doctests) that start their own loop.
@pytest.fixture(scope="package")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="package")
def browser(playwright: Playwright) -> Iterator[Browser]:
    """Debian's Chromium, headless."""
    executable = os.environ.get("INSIGHTRAY_CHROMIUM", "/usr/bin/chromium")
    if shutil.which(executable) is None:
        message = (
            f"Chromium not found at {executable}: install it with "
            "`apt-get install -y chromium` (see .ci/run) or set INSIGHTRAY_CHROMIUM"
        )
        if os.environ.get("INSIGHTRAY_SKIP_BROWSER") == "1":
            pytest.skip(message)
        pytest.fail(message)
    chromium = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
    yield chromium
    chromium.close()


@pytest.fixture
def recorded(browser: Browser, service: Service) -> Iterator[RecordedPage]:
    """A fresh 1280x800 page at the service, recording the URL of every request."""
    context: BrowserContext = browser.new_context(
        viewport={"width": 1280, "height": 800}, base_url=service.url
    )
    context.set_default_timeout(60_000)
    record = RecordedPage(context.new_page())
    context.on("request", lambda request: record.requests.append(request.url))
    errors: list[str] = []
    record.page.on("pageerror", lambda error: errors.append(str(error)))
    record.page.on(
        "console",
        lambda message: errors.append(message.text)
        if "Content Security Policy" in message.text
        else None,
    )
    yield record
    context.close()
    assert not errors, f"errors in the page: {errors}"


@pytest.fixture
def page(recorded: RecordedPage) -> Page:
    return recorded.page


def foreign_requests(requests: list[str], service_url: str) -> list[str]:
    """Requests to anything but the service's origin (``data:`` and ``blob:`` are local)."""
    origin = urlsplit(service_url)
    foreign = []
    for url in requests:
        parts = urlsplit(url)
        if parts.scheme in ("data", "blob"):
            continue
        if (parts.scheme, parts.netloc) != (origin.scheme, origin.netloc):
            foreign.append(url)
    return foreign
