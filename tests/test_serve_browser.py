"""The web page end to end: Playwright drives Debian's headless Chromium against a real server.

Skips with a reason where no Chromium is installed (`.ci/run` installs Debian's with apt). The
screenshot is kept in ``test-artifacts/`` (or ``$FACESCAN_TEST_ARTIFACTS``).
"""

import os
import shutil
import socket
import threading
import time
from pathlib import Path

import pytest

pytest.importorskip("fastapi", reason="service tests need the serve extra (fastapi)")
pytest.importorskip("playwright", reason="needs playwright (the dev extra)")

from .conftest import ROOT, shared  # noqa: E402

CHROMIUM = os.environ.get("FACESCAN_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
ARTIFACTS = Path(os.environ.get("FACESCAN_TEST_ARTIFACTS", ROOT / "test-artifacts"))


@pytest.fixture(scope="module")
def server_url():
    import uvicorn

    from facescan.serve import ServeConfig, create_app

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(ServeConfig(port=port)), host="127.0.0.1", port=port,
                                           log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.time() + 30
    while not server.started and time.time() < deadline:
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


@pytest.mark.skipif(CHROMIUM is None, reason="no Chromium browser installed (apt install chromium)")
def test_page_analyzes_a_group_photo_and_highlights_the_asked_person(server_url):
    from playwright.sync_api import expect, sync_playwright

    photo = shared("photos", "multi_face.jpg")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        external = []
        page.on("request", lambda r: external.append(r.url) if not r.url.startswith((server_url, "blob:", "data:"))
                else None)
        page.goto(server_url)
        expect(page.locator("#backend option")).to_have_count(1)
        page.set_input_files("#file", str(photo))
        page.check("#explain")
        page.click("#run")
        expect(page.locator("#overlay rect.box")).to_have_count(5, timeout=30_000)
        tags = page.locator("#overlay text.tag").all_text_contents()
        assert [t.split()[0] for t in tags] == ["#0", "#1", "#2", "#3", "#4"]
        assert all(("male" in t or "female" in t) and "20-29" in t for t in tags)  # label per box
        expect(page.locator("#cards .card")).to_have_count(5)
        explanations = page.locator("#cards pre.expl").all_text_contents()  # ExpLLM chain per face
        assert len(explanations) >= 4 and all("Final answer" in e and "AU" in e for e in explanations)
        expect(page.locator("#cards .card").first.locator(".bar")).not_to_have_count(0)  # probability bars
        page.fill("#question", "the man in the light blue shirt")
        page.click("#ask")
        chosen = page.locator("#overlay rect.box.chosen")
        expect(chosen).to_have_count(1, timeout=30_000)
        assert chosen.get_attribute("data-face") == "2"
        expect(page.locator("#cards .card.chosen")).to_have_attribute("data-face", "2")
        expect(page.locator("#answer")).to_contain_text("answered")
        page.screenshot(path=str(ARTIFACTS / "serve_page.png"), full_page=True)
        browser.close()
    assert external == []  # nothing loaded from outside the server: the page works offline
    assert (ARTIFACTS / "serve_page.png").stat().st_size > 10_000
