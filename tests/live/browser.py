"""A real browser on the live stack: Debian's Chromium driven by Playwright (no browser download here).

The stack's host name is mapped to 127.0.0.1 inside the browser, so every request it makes goes to loopback.
The page is opened over HTTPS; the browser does not hold the private CA (curl and openssl verify the chain
in the other live tests), so certificate errors are ignored here and only here.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

from playwright.sync_api import Page, sync_playwright

T = TypeVar("T")

CHROMIUM = "/usr/bin/chromium"
# What a sandboxed, network-less machine needs: no sandbox as root, no background connections.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def in_browser(hostname: str, action: Callable[[Page], T], credentials: tuple[str, str] | None = None) -> T:
    """Run `action` on a fresh page and return what it returns; `credentials` answer the registry's
    basic-auth challenge as a user at the prompt would.

    The browser lives in a thread of its own: Playwright's sync API switches greenlets, which on CPython
    3.11 leaves the thread's compiler recursion counter off, and a later `compile()` in that thread (pytest
    rewriting a module it imports late) fails with "AST constructor recursion depth mismatch".
    """
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(_run_in_browser, hostname, action, credentials).result()


def _run_in_browser(hostname: str, action: Callable[[Page], T], credentials: tuple[str, str] | None) -> T:
    executable = shutil.which("chromium") or CHROMIUM
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=executable,
            headless=True,
            args=[*CHROMIUM_ARGS, f"--host-resolver-rules=MAP {hostname} 127.0.0.1"],
        )
        try:
            context = browser.new_context(
                ignore_https_errors=True,
                http_credentials=({"username": credentials[0], "password": credentials[1]} if credentials else None),
            )
            page = context.new_page()
            page.set_default_timeout(30_000)
            return action(page)
        finally:
            browser.close()


@dataclass
class UiView:
    """What the UI page showed, and what its app answered when asked for tags or a delete."""

    title: str
    heading: str
    status: str
    repositories: list[str]
    tags: list[str] | None = None
    deleted: dict[str, Any] | None = None


def view_ui(
    url: str,
    hostname: str,
    credentials: tuple[str, str] | None = None,
    *,
    tags_of: str | None = None,
    delete: tuple[str, str] | None = None,
) -> UiView:
    """Open the UI at `url`, wait until its app has asked the registry for the catalog (it may have failed),
    then list the tags of `tags_of` and delete the tag `delete` = (repository, tag) as the UI does."""

    def look(page: Page) -> UiView:
        response = page.goto(url)
        assert response is not None and response.status == 200, response
        # Bounded (the page's default timeout): the app has asked for the catalog and shown the outcome.
        page.wait_for_function("() => window.registryUi && document.getElementById('status').textContent !== 'loading'")
        view = UiView(
            title=page.title(),
            heading=page.locator("h1").inner_text(),
            status=page.locator("#status").inner_text(),
            repositories=page.locator("#repositories li").all_inner_texts(),
        )
        if tags_of is not None:
            view.tags = page.evaluate("repo => window.registryUi.listTags(repo)", tags_of)
        if delete is not None:
            view.deleted = page.evaluate("([repo, tag]) => window.registryUi.deleteTag(repo, tag)", list(delete))
        return view

    return in_browser(hostname, look, credentials)
