"""The web page end to end: Playwright drives Debian's headless Chromium against a real server.

Skips with a reason where no Chromium is installed (`.ci/run` installs Debian's with apt). The
screenshots (``serve_page.png``, ``serve_photo_1280.png``, ``serve_photo_400.png``) are kept in
``test-artifacts/`` (or ``$FACESCAN_TEST_ARTIFACTS``).
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
        tags = [t.get_attribute("data-caption") for t in page.locator("#overlay text.tag").all()]
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


# ----------------------------------------------------------------------------- the photo page's layout
# What the page shows of a photo, in CSS pixels: the picture, its face boxes, its caption blocks and texts.
GEOMETRY = """() => {
  const r = (e) => { const b = e.getBoundingClientRect(); return { x: b.left, y: b.top, w: b.width, h: b.height }; };
  const svg = document.getElementById("overlay");
  return {
    image: r(document.getElementById("photo")),
    boxes: [...svg.querySelectorAll("rect.box")].map((e) => ({ face: e.dataset.face, ...r(e) })),
    labels: [...svg.querySelectorAll("g.caption")].map((g) => ({
      face: g.dataset.face, ...r(g.querySelector("rect.tagbg")),
      text: r(g.querySelector("text")), fontPx: g.querySelector("text").getBoundingClientRect().height,
      shown: g.querySelector("text").textContent, caption: g.querySelector("text").dataset.caption })),
    drawn: JSON.parse(svg.dataset.labels || "[]"), variant: svg.dataset.variant,
    scrollWidth: document.documentElement.scrollWidth, clientWidth: document.documentElement.clientWidth,
    innerHeight: window.innerHeight,
  };
}"""

# Images a user would see as a broken-image icon: visible, but not decoded.
BROKEN_IMAGES = """() => [...document.images]
  .filter((i) => i.getClientRects().length && getComputedStyle(i).visibility !== "hidden")
  .filter((i) => !i.complete || i.naturalWidth === 0).map((i) => i.id || i.src)"""


def _area(a, b) -> float:
    w = min(a["x"] + a["w"], b["x"] + b["w"]) - max(a["x"], b["x"])
    h = min(a["y"] + a["h"], b["y"] + b["h"]) - max(a["y"], b["y"])
    return max(0.0, w) * max(0.0, h)


def _inside(inner, outer, tol=0.75) -> bool:
    return (inner["x"] >= outer["x"] - tol and inner["y"] >= outer["y"] - tol
            and inner["x"] + inner["w"] <= outer["x"] + outer["w"] + tol
            and inner["y"] + inner["h"] <= outer["y"] + outer["h"] + tol)


def _check_captions(page, n: int) -> dict:
    """Every face has a caption block inside the picture, overlapping no other caption and no face box."""
    g = page.evaluate(GEOMETRY)
    assert len(g["boxes"]) == len(g["labels"]) == len(g["drawn"]) == n
    for label in g["labels"]:
        assert _inside(label, g["image"]), (label, g["image"])       # kept inside the picture
        assert _inside(label["text"], label, tol=1.5), label          # its text inside its block
        assert label["w"] > 8 and label["fontPx"] >= 11               # readable at any width
        for other in g["labels"]:
            if other is not label:
                assert _area(label, other) < 1.0, (label, other)      # captions do not overlap
        for box in g["boxes"]:
            assert _area(label, box) < 1.0, (label, box)              # nor cover a face
    assert sorted(label["face"] for label in g["labels"]) == [str(i) for i in range(n)]
    return g


def _ask(page, question: str) -> None:
    from playwright.sync_api import expect

    page.fill("#question", question)
    page.click("#ask")
    expect(page.locator("#overlay rect.box.chosen")).to_have_count(1, timeout=30_000)
    answer = page.locator("#answer")
    expect(answer).to_contain_text("answered")
    box = answer.bounding_box()
    height = page.evaluate("() => window.innerHeight")
    assert box is not None and box["y"] >= 0 and box["y"] + box["height"] <= height, box  # no scrolling to see it


@pytest.mark.skipif(CHROMIUM is None, reason="no Chromium browser installed (apt install chromium)")
def test_photo_captions_stay_apart_inside_the_picture_at_1280_and_400_px(server_url):
    from playwright.sync_api import expect, sync_playwright

    photo = shared("photos", "multi_face.jpg")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        errors = []
        for width in (1280, 400):
            page = browser.new_page(viewport={"width": width, "height": 800})
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.goto(server_url)
            expect(page.locator("#backend option")).to_have_count(1)
            assert page.evaluate("() => document.documentElement.scrollWidth") <= width
            page.set_input_files("#file", str(photo))
            page.click("#run")
            expect(page.locator("#overlay g.caption")).to_have_count(5, timeout=30_000)
            g = _check_captions(page, 5)
            assert g["scrollWidth"] <= g["clientWidth"] == width  # no sideways scrolling
            if width == 1280:  # room for the whole captions: number and every label, in one or two lines
                assert g["variant"] in ("full", "two-line")
                assert all(lab["shown"].startswith(f"#{lab['face']}") and "20-29" in lab["shown"]
                           and ("male" in lab["shown"] or "female" in lab["shown"]) for lab in g["labels"])
                assert g["image"]["w"] > 600
            else:  # shorter captions where the picture is small, each at least the face's number
                assert all(lab["shown"].startswith(f"#{lab['face']}") for lab in g["labels"])
                assert g["image"]["w"] > 330 and g["image"]["x"] >= 0 and g["image"]["x"] + g["image"]["w"] <= width
                for card in page.locator("#cards .card").all():  # the face column: whole and readable
                    b = card.bounding_box()
                    assert b["x"] >= 0 and b["x"] + b["width"] <= width and b["width"] > 300
                    assert card.evaluate("(e) => e.scrollWidth <= e.clientWidth + 1")
            _ask(page, "the man in the light blue shirt")
            assert page.locator("#overlay rect.box.chosen").get_attribute("data-face") == "2"
            _check_captions(page, 5)
            assert page.evaluate("() => document.documentElement.scrollWidth") <= width
            page.screenshot(path=str(ARTIFACTS / f"serve_photo_{width}.png"), full_page=True)
            if width == 1280:  # narrowed in place: the captions are placed again for the smaller picture
                page.set_viewport_size({"width": 400, "height": 800})
                page.wait_for_function("() => document.getElementById('photo').clientWidth < 400")
                page.wait_for_timeout(200)
                g = _check_captions(page, 5)
                assert g["scrollWidth"] <= 400
            page.close()
        browser.close()
    assert errors == []
    for width in (1280, 400):
        assert (ARTIFACTS / f"serve_photo_{width}.png").stat().st_size > 10_000


@pytest.mark.skipif(CHROMIUM is None, reason="no Chromium browser installed (apt install chromium)")
def test_photo_page_shows_no_broken_picture_and_no_stale_download(server_url):
    from playwright.sync_api import expect, sync_playwright

    photo = shared("photos", "multi_face.jpg")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        page.goto(server_url)
        expect(page.locator("#backend option")).to_have_count(1)
        assert page.evaluate(BROKEN_IMAGES) == [] and page.locator("#photo").is_hidden()  # before any upload
        assert page.locator("#download").is_hidden() and page.locator("#answer").is_hidden()

        # a photo's results, then a text file: the browser cannot show it and the server refuses it
        page.set_input_files("#file", str(photo))
        page.click("#run")
        expect(page.locator("#download")).to_be_visible(timeout=30_000)
        expect(page.locator("#photo")).to_be_visible()
        assert page.locator("#download").get_attribute("download") == "multi_face.facescan.json"
        page.set_input_files("#file", files=[{"name": "notes.txt", "mimeType": "text/plain",
                                              "buffer": b"not a picture at all\n"}])
        expect(page.locator("#status")).to_contain_text("cannot show it")
        assert page.evaluate(BROKEN_IMAGES) == []
        assert page.locator("#download").is_hidden() and page.locator("#download").get_attribute("href") is None
        page.click("#run")
        expect(page.locator("#status.error")).to_contain_text("not a recognized image format")
        assert page.evaluate(BROKEN_IMAGES) == [] and page.locator("#stage").is_hidden()
        assert page.locator("#download").is_hidden() and page.locator("#download").get_attribute("href") is None
        assert page.locator("#cards .card").count() == 0 and page.locator("#overlay rect").count() == 0

        # a good photo whose next request fails: the old picture, results and download go with it
        page.set_input_files("#file", str(photo))
        page.click("#run")
        expect(page.locator("#cards .card")).to_have_count(5, timeout=30_000)
        expect(page.locator("#download")).to_be_visible()
        page.evaluate("""() => {  // the download link's state each time the page sends a request
          const send = window.fetch; window.linkAtSend = [];
          window.fetch = (...a) => {
            window.linkAtSend.push(!document.getElementById("download").hidden);
            return send(...a);
          };
        }""")
        page.route("**/v1/ask", lambda route: route.fulfill(status=503, content_type="application/json",
                                                             body='{"detail": "busy: try again in a moment"}'))
        page.fill("#question", "the woman on the left")
        page.click("#ask")
        expect(page.locator("#status.error")).to_contain_text("503: busy")
        assert page.evaluate("() => window.linkAtSend") == [False]  # withdrawn before the request went out
        assert page.locator("#download").is_hidden() and page.locator("#download").get_attribute("href") is None
        assert page.locator("#stage").is_hidden() and page.evaluate(BROKEN_IMAGES) == []
        assert page.locator("#cards .card").count() == 0 and page.locator("#answer").is_hidden()

        page.unroute("**/v1/ask")  # and the next good request brings picture, results and link back
        page.click("#run")
        expect(page.locator("#cards .card")).to_have_count(5, timeout=30_000)
        expect(page.locator("#photo")).to_be_visible()
        expect(page.locator("#download")).to_be_visible()
        assert page.locator("#download").get_attribute("href").startswith("blob:")
        browser.close()
