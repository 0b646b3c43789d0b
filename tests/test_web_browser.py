"""The web page in a real browser: Debian's chromium, headless, driven by Playwright, on a
phone-sized screen (390 px wide). Screenshots of every page go to the test's tmp dir
(FRAME_INGEST_SCREENSHOTS names another folder to keep them), never into the repository."""

from __future__ import annotations

import os
import tomllib
from pathlib import Path

import pytest

from tests import images, mails
from tests.imap_helpers import toml_value
from tests.web_support import PASSWORD, start_site, stop

CHROMIUM = "/usr/bin/chromium"
AUNT = "aunt.may@relatives.example"
WIDTH = 390

pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian's chromium")


@pytest.fixture
def site(tmp_path, mailbox):
    mailbox.append("inbox", mails.with_images([("beach.jpg", mails.picture(51))],
                                              sender=f"Aunt May <{AUNT}>",
                                              subject="From the seaside"), create=True)
    secret = tmp_path / "imap-password"
    secret.write_text(mailbox.password)
    imap = {"enabled": True, "host": mailbox.host, "port": mailbox.port, "security": "none",
            "username": mailbox.user, "password_file": str(secret), "folder": "inbox",
            "processed_folder": "processed/inbox", "allowed_senders": [mails.FAMILY],
            "timeout_seconds": 10.0}
    extra = "\n[sources.imap]\n" + "".join(f"{key} = {toml_value(value)}\n"
                                           for key, value in imap.items())
    site = start_site(tmp_path, extra)
    yield site
    stop(site)


@pytest.fixture
def browser():
    from playwright.sync_api import sync_playwright
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True,
                                             args=["--no-sandbox"])
        yield browser
        browser.close()


def submit(page, button) -> None:
    """Click a form's button and wait for the page it leads to."""
    with page.expect_navigation():
        button.click()


def shoot(page, folder: Path, name: str) -> None:
    """A full-page screenshot, and no sideways scrolling on a 390 px wide screen."""
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= WIDTH, f"{name}: {width} px wide"
    page.screenshot(path=str(folder / f"{name}.png"), full_page=True)


def test_a_phone_logs_in_restores_removes_and_allows_a_sender(site, browser, tmp_path):
    shots = Path(os.environ.get("FRAME_INGEST_SCREENSHOTS") or tmp_path / "screenshots")
    shots.mkdir(parents=True, exist_ok=True)
    context = browser.new_context(viewport={"width": WIDTH, "height": 844},
                                  device_scale_factor=1, java_script_enabled=False)
    page = context.new_page()
    foreign = []
    page.on("request", lambda request: foreign.append(request.url)
            if not request.url.startswith(site.base) else None)

    page.goto(f"{site.base}/arrivals")
    assert page.url.endswith("/login")
    shoot(page, shots, "login")
    page.fill("input[name=password]", PASSWORD)
    submit(page, page.locator("button", has_text="Log in"))
    assert page.url.endswith("/arrivals"), page.content()
    article = page.locator("article", has_text="garden.jpg")
    assert article.count() == 1
    assert article.locator("img").evaluate("image => image.naturalWidth") > 0
    shoot(page, shots, "arrivals")

    submit(page, page.locator("article", has_text="garden.jpg").first.locator(
        "button", has_text="Remove from frame"))
    assert "Removed from the frame" in page.locator(".flash").inner_text()
    assert not (site.home.pictures / "garden.jpg").exists()
    assert "not on the frame" in page.locator("article", has_text="garden.jpg").first \
        .inner_text()
    shoot(page, shots, "arrivals-after-remove")

    site.home.drop("garden3.jpg", images.jpeg(images.photo(11), quality=70))
    site.run("run", check=True)         # the removed photo sent again: quarantined
    page.goto(f"{site.base}/quarantine")
    for name in ("garden2.jpg", "garden3.jpg"):     # each beside the photo it was taken for
        entry = page.locator("article", has_text=name)
        assert "removed from the frame" in entry.inner_text()
        assert [image.evaluate("image => image.naturalWidth") > 0
                for image in entry.locator("img").all()] == [True, True]
    shoot(page, shots, "quarantine")

    page.goto(f"{site.base}/removed")
    entry = page.locator("article", has_text="garden.jpg")
    assert entry.locator("img").evaluate("image => image.naturalWidth") > 0
    shoot(page, shots, "removed")
    submit(page, entry.locator("button", has_text="Undo"))
    assert "Back on the frame as garden.jpg" in page.locator(".flash").inner_text()
    assert (site.home.pictures / "garden.jpg").exists()

    page.goto(f"{site.base}/quarantine")
    entry = page.locator("article", has_text="garden2.jpg")
    assert "on the frame" in entry.inner_text()
    submit(page, entry.locator("button", has_text="Restore"))
    assert "Restored to Pictures as garden2.jpg" in page.locator(".flash").inner_text()
    assert (site.home.pictures / "garden2.jpg").exists()
    assert page.locator("article", has_text="garden2.jpg").count() == 0
    shoot(page, shots, "quarantine-after-restore")

    page.goto(f"{site.base}/rejected")
    shoot(page, shots, "rejected")
    page.goto(f"{site.base}/sources")
    shoot(page, shots, "sources")
    page.goto(f"{site.base}/senders")
    shoot(page, shots, "senders")
    submit(page, page.locator("article", has_text=AUNT).locator(
        "button", has_text="Allow this sender"))
    assert f"{AUNT} may send photos now" in page.locator(".flash").inner_text()
    shoot(page, shots, "senders-after-allow")
    allowed = tomllib.loads(site.config.read_text())["sources"]["imap"]["allowed_senders"]
    assert AUNT in allowed
    submit(page, page.locator("button", has_text="Log out"))
    assert page.url.endswith("/login")
    page.goto(f"{site.base}/quarantine")
    assert page.url.endswith("/login")
    assert foreign == []
    context.close()
