"""A real browser on the live stack: Debian's Chromium driven by Playwright (no browser download here).

The stack's host name is mapped to 127.0.0.1 inside the browser, so every request it makes goes to loopback.
The page is opened over HTTPS; the browser does not hold the private CA (curl and openssl verify the chain
in the other live tests), so certificate errors are ignored here and only here.
"""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Iterator

from playwright.sync_api import Page, sync_playwright

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


@contextlib.contextmanager
def browser_page(hostname: str, credentials: tuple[str, str] | None = None) -> Iterator[Page]:
    """A fresh page; `credentials` answer the registry's basic-auth challenge as a user at the prompt would."""
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
            yield page
        finally:
            browser.close()
