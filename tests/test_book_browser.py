"""The course book in a real browser: headless Chromium opens the landing page, two chapters and the paper page.

For each page: MathJax (served with the book, never from a CDN) has typeset every formula and no raw TeX is
left in the visible text, every image has loaded, the console shows no error and no request left this machine.
Screenshots go to <book>/_screenshots/. The site is served on localhost by a thread of this test.

    NGDFORMER_BOOK=docs/_build/html python -m pytest tests/test_book_browser.py

Skips without a built book (see tests/test_book.py), without the playwright package, or without Chromium
(Debian's package: apt-get install chromium; NGDFORMER_CHROMIUM names another executable).
"""

from __future__ import annotations

import functools
import os
import re
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from test_book import CHAPTERS, book_dir

CHROMIUM = os.environ.get("NGDFORMER_CHROMIUM", "/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
PAGES = ["index.html"] + [f"chapters/{c.stem}.html" for c in CHAPTERS if c.name[:2] in ("04", "06")] + ["paper.html"]
TIMEOUT_MS = 60_000

# Prose as the reader sees it, without code, outputs and typeset maths: raw TeX left here was not typeset.
VISIBLE_PROSE = """() => {
    const body = document.querySelector('main') || document.body;
    const copy = body.cloneNode(true);
    copy.querySelectorAll('pre, code, script, style, mjx-container, .cell_output').forEach(e => e.remove());
    return copy.innerText;
}"""
LOAD_IMAGES = """async () => {
    const images = Array.from(document.images);
    images.forEach(img => { img.loading = 'eager'; });
    await Promise.all(images.map(img => img.complete ? null
        : new Promise(done => { img.addEventListener('load', done); img.addEventListener('error', done); })));
    return images.map(img => ({src: img.currentSrc || img.src, width: img.naturalWidth}));
}"""
MATHJAX_DONE = """async () => {
    await MathJax.startup.promise;
    return {
        version: MathJax.version,
        formulas: document.querySelectorAll('.math').length,
        typeset: document.querySelectorAll('.math mjx-container, mjx-container.MathJax').length,
        untypeset: Array.from(document.querySelectorAll('.math')).filter(e => !e.querySelector('mjx-container'))
                        .map(e => e.textContent.slice(0, 60)),
        errors: Array.from(document.querySelectorAll('mjx-merror')).map(e => e.textContent.slice(0, 60)),
    };
}"""


class QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def site():
    book = book_dir()
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(QuietHandler, directory=str(book)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield book, f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")
    if not (Path(CHROMIUM).is_file() and os.access(CHROMIUM, os.X_OK)):
        pytest.skip(f"no Chromium at {CHROMIUM}: apt-get install -y chromium (or set NGDFORMER_CHROMIUM)")
    profile = tmp_path_factory.mktemp("chromium-profile")          # a fresh --user-data-dir
    with sync_api.sync_playwright() as p:
        context = p.chromium.launch_persistent_context(str(profile), executable_path=CHROMIUM, headless=True,
                                                       args=ARGS, viewport={"width": 1280, "height": 900})
        try:
            yield context
        finally:
            context.close()


@pytest.mark.parametrize("name", PAGES)
def test_page_in_chromium(site, browser, name):
    book, base = site
    assert (book / name).is_file(), f"the book has no page {name}"
    messages, failures, remote = [], [], []
    page = browser.new_page()
    page.on("console", lambda m: messages.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: messages.append(f"page error: {e}"))
    page.on("requestfailed", lambda r: failures.append(f"{r.url}: {r.failure}"))
    page.on("request", lambda r: remote.append(r.url)
            if urlsplit(r.url).hostname not in ("127.0.0.1", None) and urlsplit(r.url).scheme != "data" else None)
    try:
        page.goto(base + name, wait_until="load", timeout=TIMEOUT_MS)
        script = page.evaluate("() => (document.querySelector('script[src*=\"mathjax\" i]') || {}).src || ''")
        assert urlsplit(script).hostname == "127.0.0.1", f"{name}: MathJax not served by the book: {script!r}"
        page.wait_for_function("() => window.MathJax && MathJax.startup && MathJax.startup.promise",
                               timeout=TIMEOUT_MS)
        maths = page.evaluate(MATHJAX_DONE)
        images = page.evaluate(LOAD_IMAGES)
        page.evaluate("async () => { await document.fonts.ready; }")
        prose = page.evaluate(VISIBLE_PROSE)
        shots = book / "_screenshots"
        shots.mkdir(exist_ok=True)
        stem = Path(name).stem
        page.screenshot(path=str(shots / f"{stem}.png"), full_page=True)
        first = page.locator("div.math").first
        if first.count():
            first.scroll_into_view_if_needed()
            page.screenshot(path=str(shots / f"{stem}-maths.png"))
        figure = page.locator(".cell_output img").first
        if figure.count():
            figure.scroll_into_view_if_needed()
            page.screenshot(path=str(shots / f"{stem}-figure.png"))
    finally:
        page.close()

    assert maths["version"].startswith("3."), maths["version"]
    assert maths["formulas"] > 0, f"{name}: no formulas on the page"
    assert not maths["untypeset"], f"{name}: formulas MathJax did not typeset: {maths['untypeset'][:3]}"
    assert not maths["errors"], f"{name}: MathJax errors {maths['errors'][:3]}"
    tex = re.findall(r"\$\$|\$[^$\s][^$\n]*\$|\\[A-Za-z]+|\\[()[\]]", prose)
    assert not tex, f"{name}: raw TeX in the visible text: {tex[:5]}"
    if name != "index.html":
        assert images, f"{name}: no images"
    assert all(img["width"] > 0 for img in images), f"{name}: images not loaded {[i for i in images if not i['width']]}"
    assert not remote, f"{name}: requests left this machine: {remote[:3]}"
    assert not failures, f"{name}: failed requests {failures[:3]}"
    assert not messages, f"{name}: console {messages[:5]}"

