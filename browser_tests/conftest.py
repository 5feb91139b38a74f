"""Fixtures for the browser test of the built book: a local server, headless Chromium, page loads.

Run after ``make book``::

    python -m pytest browser_tests            # or: make test-browser

Needs Debian's ``chromium`` and ``chromium-driver`` (``apt-get install -y
chromium chromium-driver``), ``selenium`` and axe-core (``cd browser_tests &&
npm ci``; ``make test-browser`` does it). Every request to a host other than
127.0.0.1 fails (host resolver rules and CDP ``Network.setBlockedURLs``), so
the book must carry its own MathJax. The directory is not under ``tests/``, so
a plain ``pytest`` or ``make test`` does not collect it.

Options: ``--html-dir`` (default ``_build/html``), ``--screenshots``
(default ``_build/screenshots``). Environment: ``CHROMIUM``,
``CHROMEDRIVER`` override the browser and driver paths.
"""

from __future__ import annotations

import functools
import gzip
import http.server
import json
import os
import pathlib
import shutil
import threading
import time
import urllib.parse

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
MATHJAX_CDN = "https://cdn.jsdelivr.net/npm/mathjax@3/"
WIDE, NARROW = 1400, 400


def pytest_addoption(parser):
    parser.addoption("--html-dir", default=str(ROOT / "_build" / "html"), help="the built book (make book)")
    parser.addoption("--screenshots", default=str(ROOT / "_build" / "screenshots"), help="where screenshots go")
    parser.addoption(
        "--book-root", default=None,
        help="the book's sources (_toc.yml, notebooks/) the HTML was built from; default: <html-dir>/../.. if it "
             "has a _toc.yml, else this repository",
    )


def _html_dir(config) -> pathlib.Path:
    return pathlib.Path(config.getoption("--html-dir")).resolve()


def book_pages(html_dir: pathlib.Path) -> list[str]:
    """Every HTML page of the book, relative to ``html_dir`` (no theme assets or sources)."""
    skip = ("_static", "_sources", "_images", "_sphinx_design_static")
    return sorted(
        p.relative_to(html_dir).as_posix()
        for p in html_dir.rglob("*.html")
        if not p.relative_to(html_dir).parts[0] in skip
    )


def pytest_generate_tests(metafunc):
    if "page" in metafunc.fixturenames:
        html_dir = _html_dir(metafunc.config)
        pages = book_pages(html_dir) if html_dir.is_dir() else ["(no book built)"]
        metafunc.parametrize("page", pages)


def _mathjax_dir() -> pathlib.Path | None:
    try:
        import mathjax  # django-static-mathjax: MathJax's files, no Django needed
    except ImportError:
        return None
    path = pathlib.Path(mathjax.__file__).parent / "static" / "mathjax"
    return path if (path / "es5" / "tex-mml-chtml.js").exists() else None


class _Handler(http.server.SimpleHTTPRequestHandler):
    """Serves the book, gzip-compressed as a web host does. With ``mathjax`` set (``measure.py``'s
    "as the CDN would serve it"), a page's MathJax CDN URL is served from that local copy."""

    mathjax: pathlib.Path | None = None

    def log_message(self, *args):
        pass

    def do_GET(self):
        path = urllib.parse.unquote(self.path.split("?", 1)[0].split("#", 1)[0])
        if path.startswith("/__mathjax__/") and self.mathjax is not None:
            return self._send((self.mathjax / path[len("/__mathjax__/"):]).resolve())
        target = pathlib.Path(self.translate_path(path))
        if target.is_dir():
            target = target / "index.html"
        if target.suffix == ".html" and target.is_file():
            text = target.read_text(encoding="utf-8")
            if self.mathjax is not None:
                text = text.replace(MATHJAX_CDN, "/__mathjax__/")
            return self._send_bytes(text.encode("utf-8"), "text/html; charset=utf-8")
        return self._send(target)

    def _send(self, target: pathlib.Path):
        if not target.is_file():
            self.send_error(404)
            return
        self._send_bytes(target.read_bytes(), self.guess_type(str(target)))

    def _send_bytes(self, body: bytes, ctype: str):
        # gzip text as a web host does (GitHub Pages, a CDN), so throttled timings are realistic.
        compress = "gzip" in self.headers.get("Accept-Encoding", "") and not ctype.startswith(("image/png", "image/jpeg", "font/woff2"))
        if compress:
            body = gzip.compress(body, compresslevel=6, mtime=0)
        self.send_response(200)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        if compress:
            self.send_header("Content-Encoding", "gzip")
        self.end_headers()
        try:
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):  # the browser moved on (a new page, a throttled load)
            pass


@pytest.fixture(scope="session")
def html_dir(pytestconfig) -> pathlib.Path:
    path = _html_dir(pytestconfig)
    if not (path / "index.html").exists():
        pytest.skip(f"no built book at {path}: run `make book` first")
    return path


@pytest.fixture(scope="session")
def book_root(pytestconfig, html_dir) -> pathlib.Path:
    given = pytestconfig.getoption("--book-root")
    if given:
        return pathlib.Path(given).resolve()
    guess = html_dir.parent.parent
    return guess if (guess / "_toc.yml").exists() else ROOT


@pytest.fixture(scope="session")
def screenshots(pytestconfig) -> pathlib.Path:
    path = pathlib.Path(pytestconfig.getoption("--screenshots"))
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture(scope="session")
def server(html_dir):
    """The built book as built: no CDN is mapped to a local copy, so a page that needs one fails offline."""
    handler = functools.partial(_Handler, directory=str(html_dir))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/"
    httpd.shutdown()


@pytest.fixture(scope="session")
def axe_source() -> str:
    """axe-core 4.x (``cd browser_tests && npm ci``, or $AXE_CORE_JS)."""
    from metrics import axe_js

    source = axe_js()
    if source is None:
        pytest.skip("no axe-core: cd browser_tests && npm ci (or set AXE_CORE_JS to an axe.min.js)")
    return source


def _which(env: str, *names: str) -> str | None:
    if os.environ.get(env):
        return os.environ[env]
    return next((p for p in map(shutil.which, names) if p), None)


def make_driver():
    """Headless Chromium (Debian's chromium + chromium-driver, or $CHROMIUM / $CHROMEDRIVER); None when absent."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    browser = _which("CHROMIUM", "chromium", "chromium-browser", "google-chrome")
    chromedriver = _which("CHROMEDRIVER", "chromedriver")
    if not browser or not chromedriver:
        return None
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        f"--window-size={WIDE},900",
        # Offline and deterministic: any request that leaves this machine fails
        # (and shows up as a console error), so a page that needs a CDN fails.
        # The test also blocks every non-local URL through CDP (metrics.block_non_local).
        "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
    ):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    drv = webdriver.Chrome(service=Service(chromedriver), options=options)
    drv.set_page_load_timeout(60)
    drv.set_script_timeout(60)
    from metrics import block_non_local

    block_non_local(drv)  # and every non-local URL fails through CDP as well
    return drv


@pytest.fixture(scope="session")
def driver():
    try:
        import selenium  # noqa: F401
    except ImportError:
        pytest.skip("selenium is not installed: pip install selenium")
    drv = make_driver()
    if drv is None:
        pytest.skip("no chromium/chromedriver: apt-get install -y chromium chromium-driver")
    yield drv
    drv.quit()


def set_width(drv, width: int, dark: bool = False) -> None:
    drv.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride",
        {"width": width, "height": 900 if width > 600 else 800, "deviceScaleFactor": 1, "mobile": width < 600},
    )
    drv.execute_cdp_cmd(
        "Emulation.setEmulatedMedia",
        {"features": [{"name": "prefers-color-scheme", "value": "dark" if dark else "light"}]},
    )


_WAIT_MATH = """
const done = arguments[arguments.length - 1];
const start = Date.now();
(function wait() {
  if (document.readyState !== "complete") return setTimeout(wait, 50);
  const needs = document.querySelector('script[src*="mathjax"], script[src*="tex-mml"]');
  if (!needs) return done("no math");
  if (window.MathJax && MathJax.startup && MathJax.startup.promise)
    return MathJax.startup.promise.then(() => done("typeset")).catch(e => done("error: " + e));
  if (Date.now() - start > 30000) return done("MathJax did not load");
  setTimeout(wait, 50);
})();
"""


def load(drv, url: str, width: int, dark: bool = False) -> dict:
    """Open ``url`` at ``width`` px, wait for MathJax; return the console log and the math state."""
    drv.get_log("browser")  # drop what earlier pages logged
    set_width(drv, width, dark)
    drv.get(url)
    math = drv.execute_async_script(_WAIT_MATH)
    time.sleep(0.2)
    return {"math": math, "log": drv.get_log("browser")}


REPORT: dict[str, dict] = {}


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    if not REPORT:
        return
    lines = [
        "| page | weight (kB) | gzip, all assets (kB) | console errors | display eqs | too wide at 1400 | scroll at 400 "
        "| clipped without cue at 400 | axe light (critical/serious/moderate/minor) | axe dark | players |",
        "| --- | ---: | ---: | ---: | ---: | --- | ---: | ---: | --- | --- | ---: |",
    ]

    def axe(counts):
        return "/".join(str((counts or {}).get(k, {}).get("nodes", 0)) for k in ("critical", "serious", "moderate", "minor"))

    for page, r in sorted(REPORT.items()):
        wide = ", ".join(r.get("too_wide_1400", [])) or "0"
        c = r.get("clipped_400") or {}
        clipped = sum(c.get(k, 0) for k in ("display_no_cue", "eqno_overlap", "eqno_on_cut", "inline_clipped",
                                              "tables_no_cue", "asides_beside_text"))
        lines.append(
            f"| {page} | {r.get('weight', 0) / 1e3:.0f} | {r.get('gzip', 0) / 1e3:.0f} | {r.get('console_errors', '?')} | "
            f"{r.get('display_eqs', '?')} | {wide} | {r.get('scroll_400', '?')} | {clipped} | "
            f"{axe(r.get('axe_light'))} | {axe(r.get('axe_dark'))} | {r.get('players', 0)} |"
        )
    table = "\n".join(lines)
    terminalreporter.write_sep("=", "book in Chromium")
    terminalreporter.write_line(table)
    out = pathlib.Path(config.getoption("--screenshots"))
    out.mkdir(parents=True, exist_ok=True)
    (out / "browser_report.md").write_text(table + "\n")
    (out / "browser_report.json").write_text(json.dumps(REPORT, indent=1, sort_keys=True))
