"""The built book in headless Chromium, page by page, as a reader meets it.

For every HTML page of ``_build/html`` (see ``conftest.py`` for how to run):

* no console errors (any request that leaves the machine fails and is logged,
  so a page that needs a CDN fails too; MathJax is served from a local copy);
* no MathJax error, and no raw ``$$`` or ``\\begin`` outside code;
* no display equation wider than its column at 1400 px (at 400 px the count
  of equations that scroll sideways inside their box is reported);
* at 400 px the navigation drawer opens and lists every chapter of ``_toc.yml``;
* every kernel-free player changes its image when a control moves (keyboard);
* no otter/nbval marker in the page, every solution collapsed behind a
  "Show solution" toggle, no solution line visible;
* no link to a master notebook (``notebooks/*.ipynb``, a GitHub/Colab URL with
  ``/notebooks/``) and no master notebook copied into the site;
* page weight under 2 MB, where the weight is the HTML file plus every local
  image file its ``<img>`` elements show (data-URI images are inside the
  HTML); and under 1.5 MB gzip-compressed counting everything the page loads
  (theme CSS/JS/fonts, MathJax and its fonts: a first visit), nothing from
  another host;
* maths ships with the book: MathJax is loaded from the site itself and
  typesets with every other host blocked (``metrics.block_non_local``);
* at 400 px nothing is clipped without a cue: a display equation, inline
  formula or table wider than the column scrolls in its own box that shows it
  (a fade or a scrollbar), no equation number sits over or beside the cut, no
  side box squeezes the text, the page itself never scrolls sideways
  (``metrics.LAYOUT_JS``);
* axe-core 4.x finds no critical or serious violation, in light and in dark
  mode (``cd browser_tests && npm ci`` installs it);
* 0 broken internal links (``href``/``src`` of a, img, link, script, and
  ``#fragments`` into HTML pages);
* every figure of a chapter has a caption and alt text that is not a
  placeholder; every "Chapter N" of the prose links to chapter N's page;
* at 400 px no figure text is under 8 CSS px (players say their smallest text
  and dpi; a notebook figure is taken as the house style's 10 pt at 100 dpi).

Screenshots of every chapter go to ``_build/screenshots/`` (top of page at
1400 and 400 px, the widest equation and the open drawer at 400 px, the first
player, dark mode at both widths).
"""

from __future__ import annotations

import html.parser
import pathlib
import re
import sys
import time
import urllib.parse

import pytest
import yaml

import metrics
from conftest import _WAIT_MATH as conftest_wait_math
from conftest import NARROW, REPORT, ROOT, WIDE, load, set_width

sys.path.insert(0, str(ROOT / "grading"))

MAX_PAGE_BYTES = 2_000_000
MAX_PAGE_GZIP_BYTES = 1_500_000  # the HTML and every asset it loads, gzip-compressed as a web host serves them
MARKERS = (
    "BEGIN SOLUTION", "END SOLUTION", "BEGIN TESTS", "END TESTS", "BEGIN QUESTION", "END QUESTION",
    "ASSIGNMENT CONFIG", "TEST CONFIG", "NBVAL_", "# SOLUTION", "BEGIN PROMPT", "END PROMPT",
)
MASTER_LINK = re.compile(
    r"(/notebooks/[^/?#]+\.ipynb)|((github\.com|githubusercontent\.com|colab\.research\.google\.com|"
    r"mybinder\.org|nbviewer)[^ ]*/notebooks/)"
)

# One pass over the page at 1400 px: everything the checks need, measured in the browser.
_ANALYZE = r"""
const article = document.querySelector(".bd-article") || document.body;
const skip = "pre, code, script, style, textarea, mjx-container, .highlight, .MathJax, math";
const raw = [];
const walker = document.createTreeWalker(article, NodeFilter.SHOW_TEXT);
for (let n = walker.nextNode(); n; n = walker.nextNode()) {
  if (n.parentElement.closest(skip)) continue;
  const t = n.textContent;
  if (t.includes("$$") || t.includes("\\begin") || t.includes("\\end{")) raw.push(t.trim().slice(0, 80));
}
const errors = [...document.querySelectorAll("mjx-merror, [data-mjx-error]")].map(
  e => e.getAttribute("data-mjx-error") || e.getAttribute("title") || e.textContent.slice(0, 80));
const clone = article.cloneNode(true);
clone.querySelectorAll("script, style").forEach(e => e.remove());
const details = [...document.querySelectorAll("details")].map(d => ({
  summary: (d.querySelector("summary") || {textContent: ""}).textContent.replace(/\s+/g, " ").trim(),
  open: d.open,
  shown: [...d.children].filter(c => c.tagName !== "SUMMARY").some(c => c.checkVisibility()),
}));
const links = [...document.querySelectorAll("a[href]")].map(a => a.href);
const images = [...document.querySelectorAll("img")].map(i => ({src: i.getAttribute("src") || "", alt: i.getAttribute("alt") || ""}));
const searchFields = [...document.querySelectorAll("form.bd-search, .search-button-field, input[type=search]")]
  .filter(e => e.checkVisibility() && !e.closest("dialog") && !(e.tagName === "INPUT" && e.closest("form.bd-search"))).length;
const players = document.querySelectorAll(".cl-player").length;
const oldPlayers = document.querySelectorAll(".animation input.anim-slider, .jupyter-widgets, script[type='application/vnd.jupyter.widget-view+json']").length;
// Figures of cell outputs (players excluded): numbered and captioned, with the caption as alt text.
const cellFigures = [...article.querySelectorAll(".cell_output img, figure img")]
  .filter(i => !i.closest(".cl-player") && i.naturalWidth > 100)
  .map(i => {
    const fig = i.closest("figure");
    const cap = fig && fig.querySelector("figcaption");
    return {src: (i.getAttribute("src") || "").slice(0, 60), alt: i.getAttribute("alt") || "",
            caption: cap ? cap.textContent.replace(/\s+/g, " ").trim().slice(0, 120) : ""};
  });
// Every "Chapter N" in the prose, and whether it sits in a link (and where the link goes).
const chapterMentions = [];
const walker2 = document.createTreeWalker(article, NodeFilter.SHOW_TEXT);
for (let n = walker2.nextNode(); n; n = walker2.nextNode()) {
  if (n.parentElement.closest(skip + ", .cell_output, .headerlink")) continue;
  for (const m of n.textContent.matchAll(/\bChapter\s+(\d+)\b/g)) {
    const a = n.parentElement.closest("a[href]");
    chapterMentions.push({n: parseInt(m[1]), href: a ? a.getAttribute("href") : null,
                          context: n.textContent.slice(Math.max(0, m.index - 30), m.index + 40).replace(/\s+/g, " ")});
  }
}
return {raw, errors, searchFields, text: clone.textContent, visible: article.innerText, details, links, images, players, oldPlayers,
        title: document.title, cellFigures, chapterMentions};
"""

_WIDTHS = r"""
return [...document.querySelectorAll("div.math")].filter(d => d.querySelector("mjx-container")).map(d => {
  const m = d.querySelector("mjx-container > mjx-math") || d.querySelector("mjx-container");
  const eqno = d.querySelector(".eqno");
  const label = eqno ? eqno.textContent.replace(/[^\w().,-]/g, "").replace(/#$/, "") : "(unnumbered)";
  const c = d.querySelector("mjx-container");
  return {label, math: Math.ceil(m.getBoundingClientRect().width), column: d.clientWidth,
          scrolls: c.scrollWidth > c.clientWidth + 1 || d.scrollWidth > d.clientWidth + 1};
});
"""


def _severe(log: list[dict]) -> list[str]:
    return [entry["message"] for entry in log if entry.get("level") == "SEVERE"]


def _chapters(book_root: pathlib.Path) -> list[str]:
    """The pages of the book's ``_toc.yml`` (files, without the root page), as ``.html`` paths."""
    toc = yaml.safe_load((book_root / "_toc.yml").read_text())
    files = []

    def walk(node):
        if isinstance(node, dict):
            if "file" in node:
                files.append(node["file"] + ".html")
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(toc.get("parts", toc.get("chapters", [])))
    return files


def _master(page: str, book_root: pathlib.Path) -> pathlib.Path | None:
    path = book_root / pathlib.Path(page).with_suffix(".ipynb")
    return path if page.startswith("notebooks/") and path.exists() else None


def _solution_lines(master: pathlib.Path) -> list[str]:
    """Distinctive lines of every solution body (what a reader must not see without clicking)."""
    from make_student import solution_cells

    lines = []
    for sources in solution_cells(master).values():
        for source in sources:
            body = re.search(r"#\s*BEGIN SOLUTION\n(.*?)#\s*END SOLUTION", source, re.S)
            text = body.group(1) if body else source
            lines += [ln.strip() for ln in text.splitlines() if len(ln.strip()) > 25 and not ln.strip().startswith("#")]
    return lines


def _open_drawer(drv) -> list[str]:
    """Click the visible menu button at 400 px; return the visible links of the open drawer."""
    from selenium.webdriver.common.by import By

    buttons = [b for b in drv.find_elements(By.CSS_SELECTOR, ".primary-toggle, .sidebar-toggle.primary-toggle") if b.is_displayed()]
    if not buttons:
        return ["(no visible menu button)"]
    buttons[0].click()
    deadline = time.time() + 5
    links: list[str] = []
    while time.time() < deadline:
        links = drv.execute_script(
            """
            return [...document.querySelectorAll('#pst-primary-sidebar a, dialog a, .bd-sidebar-primary a')]
              .filter(a => { const r = a.getBoundingClientRect();
                             return r.width > 0 && r.height > 0 && r.right > 0 && r.left < window.innerWidth
                                    && getComputedStyle(a).visibility !== 'hidden'; })
              .map(a => a.href);
            """
        )
        if links:
            time.sleep(0.4)  # let the slide-in finish before the screenshot
            break
        time.sleep(0.1)
    return links


def _open_contents(drv) -> list[str] | None:
    """Click the visible "contents" button at 400 px; the visible links of this page's contents (None: no button)."""
    from selenium.webdriver.common.by import By

    buttons = [b for b in drv.find_elements(By.CSS_SELECTOR, ".secondary-toggle") if b.is_displayed()]
    if not buttons:
        return None
    buttons[0].click()
    time.sleep(0.4)
    return drv.execute_script(
        """
        return [...document.querySelectorAll('#pst-secondary-sidebar a, .bd-sidebar-secondary a, dialog a')]
          .filter(a => { const r = a.getBoundingClientRect();
                         return r.width > 0 && r.height > 0 && r.right > 0 && r.left < window.innerWidth; })
          .map(a => a.href);
        """
    )


def _move_players(drv) -> list[dict]:
    """Press the right arrow on every enabled control of every player; did the image change?"""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    results = []
    for k, player in enumerate(drv.find_elements(By.CSS_SELECTOR, ".cl-player")):
        img = player.find_element(By.CSS_SELECTOR, "img.cl-player-image")
        for control in player.find_elements(By.CSS_SELECTOR, ".cl-player-control"):
            name = control.find_element(By.CSS_SELECTOR, ".cl-player-name").text
            slider = control.find_element(By.CSS_SELECTOR, "input.cl-player-range")
            if slider.get_attribute("disabled") is not None:
                continue
            drv.execute_script("arguments[0].scrollIntoView({block: 'center'}); arguments[0].focus();", slider)
            before = img.get_attribute("src")
            value_before = control.find_element(By.CSS_SELECTOR, "output").text
            slider.send_keys(Keys.ARROW_RIGHT)
            time.sleep(0.05)
            results.append({
                "player": k, "control": name, "changed": img.get_attribute("src") != before,
                "label": bool(name) and control.find_element(By.CSS_SELECTOR, "output").text != value_before,
            })
            slider.send_keys(Keys.ARROW_LEFT)
    return results


class _Links(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.ids: set[str] = set()
        self.refs: list[str] = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        for key in ("id", "name"):
            if attrs.get(key) and (key == "id" or tag == "a"):
                self.ids.add(attrs[key])
        ref = attrs.get("href") if tag in ("a", "link") else attrs.get("src") if tag in ("img", "script") else None
        if ref:
            self.refs.append(ref)


_PARSED: dict[pathlib.Path, _Links] = {}


def _parse(path: pathlib.Path) -> _Links:
    if path not in _PARSED:
        parser = _Links()
        parser.feed(path.read_text(encoding="utf-8", errors="replace"))
        _PARSED[path] = parser
    return _PARSED[path]


def broken_links(html_dir: pathlib.Path, page: str) -> list[str]:
    """Internal href/src of ``page`` whose file (or #fragment in an HTML page) does not exist."""
    path = html_dir / page
    broken = []
    for ref in _parse(path).refs:
        parts = urllib.parse.urlsplit(ref)
        if parts.scheme or ref.startswith("//") or ref.startswith("data:"):
            continue
        target = path if not parts.path else (path.parent / urllib.parse.unquote(parts.path)).resolve()
        if target.is_dir():
            target = target / "index.html"
        if not target.exists():
            broken.append(ref)
        elif parts.fragment and target.suffix == ".html" and urllib.parse.unquote(parts.fragment) not in _parse(target).ids:
            broken.append(ref)
    return broken


def page_weight(html_dir: pathlib.Path, page: str, images: list[dict]) -> int:
    """Bytes of the HTML file plus every distinct local image file it shows."""
    path = html_dir / page
    total = path.stat().st_size
    for src in {i["src"] for i in images}:
        parts = urllib.parse.urlsplit(src)
        if parts.scheme or src.startswith("//") or not parts.path:
            continue
        target = (path.parent / urllib.parse.unquote(parts.path)).resolve()
        if target.is_file():
            total += target.stat().st_size
    return total


_RESULTS: dict[str, dict] = {}


@pytest.fixture
def result(page, html_dir, server, driver, screenshots, axe_source):
    """Load ``page`` at both widths once; every check below reads this."""
    if page in _RESULTS:
        return _RESULTS[page]
    url = server + page
    slug = page.replace("/", "_").removesuffix(".html")
    chapter = page.startswith("notebooks/")
    r: dict = {}

    wide = load(driver, url, WIDE)
    r["math_state"] = wide["math"]
    r.update(driver.execute_script(_ANALYZE))
    r["widths_1400"] = driver.execute_script(_WIDTHS)
    r["mathjax_scripts"] = driver.execute_script(
        "return [...document.querySelectorAll('script[src]')].map(s => s.src).filter(s => /mathjax|tex-(mml-)?(chtml|svg)/i.test(s))")
    r["gzip"] = metrics.compressed_weight(driver, html_dir, (html_dir / page).read_bytes())
    r["axe_light"] = metrics.run_axe(driver, axe_source)
    if chapter:
        driver.save_screenshot(str(screenshots / f"{slug}-{WIDE}.png"))
    r["player_moves"] = _move_players(driver)
    if chapter and r["players"]:
        driver.save_screenshot(str(screenshots / f"{slug}-{WIDE}-player.png"))
    console = _severe(wide["log"]) + _severe(driver.get_log("browser"))

    narrow = load(driver, url, NARROW)
    r["widths_400"] = driver.execute_script(_WIDTHS)
    driver.execute_async_script(metrics.LOAD_IMAGES_JS)  # lazy figures too: the 8 px check needs every image's size
    r["layout_400"] = driver.execute_script(metrics.LAYOUT_JS)
    r["clipped_400"] = metrics.clipped_summary(r["layout_400"])
    if chapter:
        driver.save_screenshot(str(screenshots / f"{slug}-{NARROW}.png"))
        wide_eq = max(r["widths_400"], key=lambda w: w["math"] - w["column"], default=None)
        if wide_eq and wide_eq["math"] > wide_eq["column"]:
            driver.execute_script(
                "const d = [...document.querySelectorAll('div.math')].find(d => d.querySelector('.eqno') && "
                "d.querySelector('.eqno').textContent.includes(arguments[0])); if (d) d.scrollIntoView({block: 'center'});",
                wide_eq["label"].strip("()"),
            )
            driver.save_screenshot(str(screenshots / f"{slug}-{NARROW}-widest-equation.png"))
        driver.execute_script("window.scrollTo(0, 0)")
    r["contents_links"] = _open_contents(driver)
    if r["contents_links"] is not None:
        driver.get(url)  # close the contents panel the simple way
        driver.execute_async_script(conftest_wait_math)
    r["drawer_links"] = _open_drawer(driver)
    if chapter:
        driver.save_screenshot(str(screenshots / f"{slug}-{NARROW}-drawer.png"))
    console += _severe(narrow["log"]) + _severe(driver.get_log("browser"))

    dark = load(driver, url, WIDE, dark=True)
    console += _severe(dark["log"])
    r["axe_dark"] = metrics.run_axe(driver, axe_source)
    if chapter:
        driver.execute_script(
            "const e = document.querySelector('.cl-player') || document.querySelector('div.cell'); "
            "if (e) e.scrollIntoView({block: 'center'});"
        )
        time.sleep(0.2)
        driver.save_screenshot(str(screenshots / f"{slug}-{WIDE}-dark.png"))
        set_width(driver, NARROW, dark=True)
        driver.execute_script("window.scrollTo(0, 0)")
        time.sleep(0.2)
        driver.save_screenshot(str(screenshots / f"{slug}-{NARROW}-dark.png"))
    set_width(driver, WIDE)

    r["console"] = console
    r["weight"] = page_weight(html_dir, page, r["images"])
    REPORT[page] = {
        "weight": r["weight"],
        "console_errors": len(console),
        "display_eqs": len(r["widths_1400"]),
        "too_wide_1400": [f"{w['label']} {w['math']}>{w['column']}px" for w in r["widths_1400"] if w["math"] > w["column"] + 1],
        "scroll_400": sum(w["math"] > w["column"] + 1 for w in r["widths_400"]),
        "scroll_400_labels": [w["label"] for w in r["widths_400"] if w["math"] > w["column"] + 1],
        "players": r["players"],
        "math": r["math_state"],
        "gzip": r["gzip"]["total"],
        "clipped_400": r["clipped_400"],
        "axe_light": r["axe_light"]["counts"],
        "axe_dark": r["axe_dark"]["counts"],
    }
    _RESULTS[page] = r
    return r


def test_no_console_errors(result):
    assert not result["console"], "console errors:\n" + "\n".join(result["console"])


def test_math_renders_without_errors(result):
    assert not result["math_state"].startswith(("error", "MathJax did not")), result["math_state"]
    assert not result["errors"], f"MathJax errors: {result['errors']}"
    assert not result["raw"], f"raw TeX outside code (unrendered $$ or \\begin): {result['raw']}"


def test_display_math_fits_column_at_1400(result):
    wide = [w for w in result["widths_1400"] if w["math"] > w["column"] + 1]
    assert not wide, "display equations wider than their column at 1400 px: " + ", ".join(
        f"{w['label']} is {w['math']} px in a {w['column']} px column" for w in wide
    )


def test_drawer_lists_every_chapter_at_400(result, server, book_root):
    visible = {urllib.parse.urlsplit(h)._replace(fragment="").geturl() for h in result["drawer_links"]}
    missing = [f for f in _chapters(book_root) if server + f not in visible]
    assert not missing, f"at {NARROW} px the menu drawer does not show links to {missing}; visible: {sorted(visible)[:12]}"


def test_contents_button_works_at_400(result):
    if result["contents_links"] is None:
        pytest.skip("no contents button on this page")
    assert result["contents_links"], f"at {NARROW} px the contents button shows no links of this page"


def test_players_respond_to_their_controls(result):
    assert result["oldPlayers"] == 0, (
        f"{result['oldPlayers']} old-style widget(s) (one unlabelled slider over all frames, or ipywidgets "
        "state that shows nothing without a kernel): use course_lib.widgets.player"
    )
    assert result["players"] == 0 or result["player_moves"], "a player has no control that can move"
    dead = [m for m in result["player_moves"] if not (m["changed"] and m["label"])]
    assert not dead, f"controls whose image or value label did not change: {dead}"


def test_no_markers_and_solutions_collapsed(result, page, book_root):
    shown = [m for m in MARKERS if m in result["text"]]
    assert not shown, f"grading markers in the page: {shown}"
    toggles = [d for d in result["details"] if d["summary"].startswith("Show solution")]
    assert all(not d["open"] and not d["shown"] for d in toggles), "a solution is expanded when the page opens"
    master = _master(page, book_root)
    if master is None:
        return
    from make_student import solution_cells

    expected = sum(len(v) for v in solution_cells(master).values())
    assert len(toggles) >= expected, f"{expected} solution cells but {len(toggles)} 'Show solution' toggles"
    leaked = [ln for ln in _solution_lines(master) if ln in result["visible"]]
    assert not leaked, f"solution lines visible without opening a toggle: {leaked[:3]}"


def test_no_link_to_a_master_notebook(result, html_dir):
    bad = sorted({h for h in result["links"] if MASTER_LINK.search(h)})
    assert not bad, f"links to master notebooks (solutions and hidden tests): {bad}"
    copies = sorted(p.relative_to(html_dir).as_posix() for p in html_dir.rglob("*.ipynb"))
    assert not copies, f"master notebooks copied into the site: {copies}"


def test_page_weight_under_2mb(result, page):
    assert result["weight"] < MAX_PAGE_BYTES, f"{page} weighs {result['weight'] / 1e6:.2f} MB (HTML + images)"


def test_no_broken_internal_links(page, html_dir):
    broken = broken_links(html_dir, page)
    assert not broken, f"broken internal links in {page}: {broken}"


def test_at_most_one_search_field(result):
    assert result["searchFields"] <= 1, f"{result['searchFields']} visible search fields on one page"


def test_search_finds_a_chapter(html_dir, server, driver, book_root):
    """The search page answers a query with a result (the title word of the first chapter)."""
    first = next(f for f in reversed(_chapters(book_root)) if f.startswith("notebooks/"))
    title = re.search(r"<title>(.*?)</title>", (html_dir / first).read_text(encoding="utf-8"), re.S).group(1)
    word = max(re.findall(r"[A-Za-z]{4,}", title), key=len)
    load(driver, f"{server}search.html?q={word}", WIDE)
    deadline = time.time() + 20
    hits = 0
    while time.time() < deadline and not hits:
        hits = driver.execute_script("return document.querySelectorAll('#search-results li, ul.search li').length")
        time.sleep(0.2)
    assert hits, f"searching for {word!r} found nothing"


def test_figures_have_alt_text(result):
    hashes = [i["src"][:80] for i in result["images"] if not i["alt"].strip() or re.search(r"[0-9a-f]{32,}", i["alt"])]
    assert not hashes, f"images whose alt text is missing or a file hash: {hashes[:3]}"


def test_maths_ship_with_the_book(result):
    """MathJax comes from the book's own _static/, and typesets with every other host blocked."""
    remote = [src for src in result["mathjax_scripts"] if not src.startswith(("http://127.0.0.1", "http://localhost"))]
    assert not remote, f"MathJax loaded from another host (offline, every formula stays raw TeX): {remote}"
    if result["mathjax_scripts"]:
        assert result["math_state"] == "typeset", f"MathJax did not typeset offline: {result['math_state']}"


def test_nothing_clipped_without_a_cue_at_400(result):
    """At 400 px every wide formula or table scrolls in its own box that shows it; numbers never sit on the cut."""
    layout, c = result["layout_400"], result["clipped_400"]
    problems = []
    if c["display_no_cue"]:
        problems.append("display equations that scroll without a cue (or are cut by the page): " + ", ".join(
            d["label"] for d in layout["display"] if (d["scrolls"] and not d["cue"]) or d["offPage"]))
    if c["eqno_overlap"] or c["eqno_on_cut"]:
        problems.append("equation numbers over or beside the cut of their formula: " + ", ".join(
            d["label"] for d in layout["display"] if d["eqnoOverlap"] or d.get("eqnoOnCut")))
    if c["inline_clipped"]:
        problems.append("inline maths clipped or scrolling without a cue: " + "; ".join(
            f"{i['text']} ({i['clipper']})" for i in layout["inline"] if not i["scrolls"] or not i["cue"]))
    if c["tables_no_cue"]:
        problems.append("tables wider than the column without a scrolling box that shows it: " + ", ".join(
            t["head"] for t in layout["tables"] if not t["scrolls"] or not t["cue"]))
    if c["asides_beside_text"]:
        problems.append("side boxes beside the text instead of in its flow: " + ", ".join(
            a["text"] for a in layout["asides"] if a["besideText"]))
    if layout["pageOverflow"]:
        problems.append("the page itself scrolls sideways")
    assert not problems, f"at {NARROW} px:\n" + "\n".join(problems)


@pytest.mark.parametrize("mode", ["light", "dark"])
def test_no_critical_or_serious_accessibility_violations(result, mode):
    """axe-core 4.x: no critical or serious violation, in light and in dark mode."""
    bad = [v for v in result[f"axe_{mode}"]["violations"] if v["impact"] in ("critical", "serious")]
    assert not bad, f"axe ({mode}): " + "; ".join(
        f"{v['impact']} {v['id']} ({v['help']}) x{len(v['nodes'])}: {v['nodes'][0]['target']} {v['nodes'][0]['html'][:100]}"
        for v in bad)


def test_compressed_page_weight_under_1_5mb(result, page):
    g = result["gzip"]
    assert g["total"] < MAX_PAGE_GZIP_BYTES, (
        f"{page} weighs {g['total'] / 1e6:.2f} MB gzip-compressed (HTML and the {g['assets']} assets it loads); "
        f"biggest: {[(name, round(size / 1e3)) for name, size in g['biggest'][:5]]} kB")
    assert not g["external"], f"{page} loads from other hosts: {g['external'][:3]}"


_PLACEHOLDER_ALT = re.compile(r"a code-cell output in section|^Figure \d+,", re.I)


def _chapter_of(page: str) -> int | None:
    m = re.match(r"notebooks/(\d+)_", page)
    return int(m.group(1)) if m else None


def test_figures_are_numbered_captioned_and_described(result, page):
    """Every figure of a chapter has a caption (``mystnb.figure``) and alt text that is not a placeholder."""
    if _chapter_of(page) is None:
        pytest.skip("not a chapter")
    bad = [f for f in result["cellFigures"] if not f["caption"] or not f["alt"].strip() or _PLACEHOLDER_ALT.search(f["alt"])]
    assert not bad, f"{len(bad)} of {len(result['cellFigures'])} figures lack a caption or real alt text: " + "; ".join(
        f"alt={f['alt'][:60]!r} caption={f['caption'][:40]!r}" for f in bad[:4])


def test_every_chapter_mention_is_a_link(result, page):
    """'Chapter N' in the prose links to chapter N's page (a mention of the page's own chapter may stay plain)."""
    own = _chapter_of(page)
    bad = [m for m in result["chapterMentions"]
           if m["n"] != own and not (m["href"] and re.search(rf"(^|/)0?{m['n']}_[\w-]+\.html", m["href"]))]
    assert not bad, f"{len(bad)} mentions of another chapter are not links to it: " + "; ".join(
        f"Chapter {m['n']} ({m['context']!r}, href={m['href']})" for m in bad[:5])


def test_figure_text_at_least_8px_at_400(result):
    """At 400 px no figure's text is under 8 CSS px (its point size at its dpi, scaled as the image is shown)."""
    small = [(f["src"][:40], metrics.figure_font_px(f)) for f in result["layout_400"]["figures"]
             if metrics.figure_font_px(f) < 8]
    assert not small, f"{len(small)} figures with text under 8 px at {NARROW} px: " + ", ".join(
        f"{px} px ({src})" for src, px in small[:5])

