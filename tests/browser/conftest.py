"""Real-browser harness: Debian's Chromium (driven by Playwright) against daphne serving the
project in a subprocess, with the project's fake M2-her server standing in for the model.

Both servers listen on ephemeral loopback ports; daphne reads the pytest-django test database
(the tests use `transactional_db`, so it sees committed rows).
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from conversations.services.conversations import conversation_create
from tests.browser.pages import log_in, open_chat
from tests.factories import make_character, make_persona, make_user
from tests.servers import (
    ServerProcess,
    daphne_env,
    free_port,
    start_daphne,
    start_process,
    stop_process,
)

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "tests" / "artifacts"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# Slow enough that a test can stop, reload or disconnect in the middle of a reply.
FAKE_TOKENS_PER_SECOND = 20


def _browser_unavailable(reason: str) -> None:
    if os.environ.get("REQUIRE_BROWSER") == "1":
        pytest.fail(f"REQUIRE_BROWSER=1 but {reason}", pytrace=False)
    pytest.skip(
        f"{reason}: run `apt-get install chromium` (Debian's package) to run the browser tests"
    )


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report


@pytest.fixture(scope="session")
def chromium_path() -> Path:
    if not CHROMIUM.exists():
        _browser_unavailable(f"{CHROMIUM} is missing")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        _browser_unavailable("playwright is not installed")
    return CHROMIUM


@pytest.fixture(scope="session")
def media_root() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="companion-media-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def fake_m2her(chromium_path: Path) -> Iterator[ServerProcess]:
    port = free_port()
    args = [
        sys.executable,
        "manage.py",
        "fake_m2her",
        "--port",
        str(port),
        "--tokens-per-second",
        str(FAKE_TOKENS_PER_SECOND),
    ]
    server = start_process("fake-m2her", args, dict(os.environ), port)
    yield server
    stop_process(server)


@pytest.fixture(scope="session")
def live_server_proc(
    django_db_setup, django_db_blocker, fake_m2her: ServerProcess, media_root: Path
) -> Iterator[ServerProcess]:
    """daphne serving companion.asgi:application on the test database."""
    with django_db_blocker.unblock():
        env = daphne_env(
            fake_m2her.url,
            M2HER_API_KEY="test",
            MEDIA_ROOT=str(media_root),
            REDIS_URL="",
            ACCOUNT_EMAIL_VERIFICATION="none",
        )
    server = start_daphne(env)
    yield server
    stop_process(server)


@pytest.fixture
def server(
    request: pytest.FixtureRequest,
    transactional_db: None,
    live_server_proc: ServerProcess,
    fake_m2her: ServerProcess,
    media_root: Path,
    settings,
) -> Iterator[ServerProcess]:
    """The running site for one test; its log is printed if the test fails."""
    settings.MEDIA_ROOT = media_root
    for process in (live_server_proc, fake_m2her):
        process.mark()
    yield live_server_proc
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        for process in (live_server_proc, fake_m2her):
            sys.stdout.write(f"\n----- {process.name} log -----\n{process.log_since_mark()}\n")


@pytest.fixture(scope="module")
def browser(chromium_path: Path, django_db_setup):
    from playwright.sync_api import sync_playwright

    # Playwright's sync API keeps an event loop running in this thread, which Django would take
    # for async code and refuse ORM calls; the tests themselves are plain sync code. Only for
    # as long as the browser runs (module scope), so other test modules keep Django's guard.
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with sync_playwright() as playwright:
            # Playwright gives every launch a fresh temporary profile (user-data-dir).
            browser = playwright.chromium.launch(
                executable_path=str(chromium_path), headless=True, args=CHROMIUM_ARGS
            )
            yield browser
            browser.close()
    finally:
        if previous is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


@dataclass
class PageWatch:
    """What a page did that a test may want to forbid: dialogs, script errors."""

    dialogs: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)


@pytest.fixture
def page_watch() -> PageWatch:
    return PageWatch()


@pytest.fixture
def new_page(browser, server: ServerProcess, page_watch: PageWatch):
    """Make pages at a given viewport width; every one is watched for dialogs and errors."""
    contexts = []

    def make(width: int = 390, height: int = 844, context=None):
        if context is None:
            context = browser.new_context(
                base_url=server.url,
                viewport={"width": width, "height": height},
                device_scale_factor=1,
                is_mobile=width < 500,
                has_touch=width < 500,
            )
            contexts.append(context)
        page = context.new_page()
        page.set_default_timeout(15_000)

        def on_dialog(dialog) -> None:
            page_watch.dialogs.append(f"{dialog.type}: {dialog.message}")
            dialog.dismiss()

        page.on("dialog", on_dialog)
        page.on("pageerror", lambda exc: page_watch.errors.append(str(exc)))
        page.on(
            "console",
            lambda msg: page_watch.console_errors.append(msg.text) if msg.type == "error" else None,
        )
        return page

    yield make
    for context in contexts:
        context.close()


@pytest.fixture
def page(new_page):
    return new_page()


@pytest.fixture
def alice_chat(server):
    """Alice's conversation with Aria (greeting plus one alternate greeting) as Sam."""
    alice = make_user("alice")
    character = make_character(
        name="Aria",
        greeting="*looks up from a book* Oh, hello {{user}}!",
        alternate_greetings=["*waves* Back again, {{user}}?"],
    )
    conversation = conversation_create(
        owner=alice, character=character, persona=make_persona(alice, name="Sam")
    )
    return alice, conversation


@pytest.fixture
def chat_page(page, server, alice_chat):
    alice, conversation = alice_chat
    log_in(page, alice, server)
    open_chat(page, conversation)
    return page


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS
