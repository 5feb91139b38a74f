"""What the browser test and ``measure.py`` measure on a page, in headless Chromium (selenium + CDP).

Shared by ``test_book_browser.py`` (the checks) and ``measure.py`` (the numbers in
``book/STACK.md``). Nothing here knows the theme: the same functions measure a
Jupyter Book 1 page (MathJax) and a Jupyter Book 2 page (KaTeX).

* :func:`block_non_local` - every request to a host other than 127.0.0.1/localhost
  fails (CDP ``Network.setBlockedURLs``), so a page that needs a CDN shows it.
* :func:`throttle` - DevTools' "Fast 3G" (1.6 Mb/s down, 750 kb/s up, 562.5 ms
  round trip), no cache: :func:`time_to_math` reads first paint and the moment
  the last formula is typeset.
* :data:`LAYOUT_JS` - at the current width: display equations that overflow
  their box, whether the box shows that it scrolls (a scroll shadow, a fade or
  a scrollbar that takes room), equation numbers over their formula, inline
  maths cut off, tables wider than the column, side boxes, the smallest text in
  a figure (the figure's scale times its 10 pt text).
* :func:`run_axe` - axe-core 4.x violations by impact.
* :func:`compressed_weight` - the gzip size of the HTML and of every asset the
  page loaded (or shows: lazy images count), each counted once.
"""

from __future__ import annotations

import gzip
import json
import os
import pathlib
import time
import urllib.parse

ROOT = pathlib.Path(__file__).resolve().parents[1]

# DevTools' "Fast 3G" preset: the throttled connection of the issue (1.6 Mb/s).
FAST_3G = {"offline": False, "latency": 562.5, "downloadThroughput": 1.6e6 / 8, "uploadThroughput": 750e3 / 8}


def block_non_local(drv) -> None:
    """Fail every request that is not to 127.0.0.1 or localhost (first matching pattern wins)."""
    drv.execute_cdp_cmd("Network.enable", {})
    drv.execute_cdp_cmd("Network.setBlockedURLs", {"urlPatterns": [
        {"urlPattern": "*://127.0.0.1:*/*", "block": False},
        {"urlPattern": "*://localhost:*/*", "block": False},
        {"urlPattern": "*://*:*/*", "block": True},
    ]})


def unblock(drv) -> None:
    drv.execute_cdp_cmd("Network.setBlockedURLs", {"urlPatterns": []})


def throttle(drv, on: bool = True) -> None:
    """DevTools' Fast 3G and no browser cache (``on``), or the full-speed connection with the cache."""
    drv.execute_cdp_cmd("Network.enable", {})
    drv.execute_cdp_cmd("Network.setCacheDisabled", {"cacheDisabled": on})
    conditions = FAST_3G if on else {"offline": False, "latency": 0, "downloadThroughput": -1, "uploadThroughput": -1}
    drv.execute_cdp_cmd("Network.emulateNetworkConditions", conditions)


# Runs before any page script: records when every formula is typeset.
# MathJax: when MathJax.startup.promise resolves (the first typeset); pages whose
# maths is in the HTML (KaTeX, Jupyter Book 2): when the fonts it uses are loaded.
MATH_CLOCK_JS = r"""
(function () {
  window.__mathDone = null;
  function mark() { if (window.__mathDone === null) window.__mathDone = performance.now(); }
  function poll() {
    const mj = window.MathJax;
    if (mj && mj.startup && mj.startup.promise) {
      mj.startup.promise.then(mark, () => { window.__mathDone = -1; });
      return;
    }
    if (document.readyState === "complete") {
      const mjScript = document.querySelector('script[src*="mathjax" i], script[src*="tex-"]');
      if (!mjScript || (Date.now() - window.__completeAt > 60000)) {
        if (!window.__completeAt) window.__completeAt = Date.now();
        if (!mjScript) { document.fonts.ready.then(mark); return; }
        window.__mathDone = -1; return;
      }
      if (!window.__completeAt) window.__completeAt = Date.now();
    }
    setTimeout(poll, 10);
  }
  poll();
})();
"""


def time_to_math(drv, url: str, timeout: float = 180.0) -> dict:
    """Load ``url`` throttled (no cache); seconds to first contentful paint and to the last typeset formula."""
    script = drv.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": MATH_CLOCK_JS})
    throttle(drv, True)
    try:
        drv.set_page_load_timeout(timeout)
        drv.get(url)
        deadline = time.time() + timeout
        done = None
        while time.time() < deadline:
            done = drv.execute_script("return window.__mathDone")
            if done is not None:
                break
            time.sleep(0.1)
        fcp = drv.execute_script(
            "const e = performance.getEntriesByName('first-contentful-paint')[0]; return e ? e.startTime : null")
    finally:
        throttle(drv, False)
        drv.execute_cdp_cmd("Page.removeScriptToEvaluateOnNewDocument", {"identifier": script["identifier"]})
    math_s = None if done is None or done < 0 else done / 1000
    fcp_s = None if fcp is None else fcp / 1000
    return {"fcp_s": fcp_s, "math_s": math_s,
            "after_paint_s": None if math_s is None or fcp_s is None else max(0.0, math_s - fcp_s)}


# The layout at the current width. Display maths: MathJax's div.math / mjx-container[display],
# KaTeX's .katex-display; a box "scrolls" when its content is wider than it.
LAYOUT_JS = r"""
const article = document.querySelector(".bd-article, article, main") || document.body;
const vw = document.documentElement.clientWidth;
function cueOf(el) {
  // A visible sign that el scrolls sideways: a scrollbar that takes room, or a shadow/fade/gradient
  // painted on the box or its ::before/::after (CSS scroll shadows), or a class our JS sets.
  const cs = getComputedStyle(el);
  if (["auto", "scroll"].includes(cs.overflowX) && el.offsetHeight - el.clientHeight
      - parseFloat(cs.borderTopWidth) - parseFloat(cs.borderBottomWidth) > 2) return "scrollbar";
  for (const pseudo of [null, "::before", "::after"]) {
    const s = getComputedStyle(el, pseudo);
    if (pseudo && (s.content === "none" || s.display === "none")) continue;
    const paint = [s.backgroundImage, s.maskImage || "", s.webkitMaskImage || "", s.boxShadow].join(" ");
    if (/gradient|inset/.test(paint)) return "shadow";
  }
  return null;
}
function scrollBox(el, stop) {
  // The nearest element from el up to stop (inclusive) whose content is wider than it.
  for (let e = el; e; e = e.parentElement) {
    if (e.scrollWidth > e.clientWidth + 1 && ["auto", "scroll"].includes(getComputedStyle(e).overflowX)) return e;
    if (e === stop) break;
  }
  return null;
}
function overlaps(a, b) {
  return Math.min(a.right, b.right) - Math.max(a.left, b.left) > 2 && Math.min(a.bottom, b.bottom) - Math.max(a.top, b.top) > 2;
}
const displays = [...article.querySelectorAll("div.math, .katex-display, div.math-display")].filter(
  d => !d.parentElement.closest("div.math, .katex-display, div.math-display"));
const display = displays.map(d => {
  const content = d.querySelector("mjx-container > mjx-math, .katex-html, .katex") || d;
  const eqno = d.querySelector(".eqno, .tag, .katex .tag, [class*=eq-label]");
  const wide = content.getBoundingClientRect().width;
  const box = scrollBox(content, d) || (d.scrollWidth > d.clientWidth + 1 ? d : null);
  const boxRect = (box || d).getBoundingClientRect();
  const visible = content.getBoundingClientRect();
  const shown = {left: Math.max(visible.left, boxRect.left), right: Math.min(visible.right, boxRect.right),
                 top: visible.top, bottom: visible.bottom};
  // The equation number over the formula: MathJax/Sphinx's span.eqno drawn on the visible part of the formula.
  let eqnoOverlap = false;
  if (eqno && !content.contains(eqno)) {
    eqnoOverlap = overlaps(eqno.getBoundingClientRect(), shown);
  }
  // The number right beside the cut edge of a formula that scrolls: it reads as part of the formula.
  let eqnoOnCut = false;
  if (eqno && box) {
    const e = eqno.getBoundingClientRect();
    eqnoOnCut = Math.min(e.bottom, boxRect.bottom) - Math.max(e.top, boxRect.top) > 2 && e.left >= boxRect.right - 2
                && e.left - boxRect.right < 24;
  }
  const label = eqno ? eqno.textContent.replace(/[^\w().,-]/g, "").replace(/#$/, "") : "(unnumbered)";
  // Clipped: cut by the page or a box that cannot scroll (overflow hidden/clip, or no scrolling box at all).
  const page = visible.right > vw + 1 && !box;
  return {label, math: Math.ceil(wide), column: Math.floor(d.clientWidth), scrolls: !!box,
          cue: box ? cueOf(box) : null, eqnoOverlap, eqnoOnCut, offPage: page};
});
const inlines = [...article.querySelectorAll("mjx-container:not([display=true]), .katex")]
  .filter(m => !m.closest("div.math, .katex-display, div.math-display, mjx-assistive-mml")
               && !(m.classList.contains("katex") && m.parentElement.closest(".katex")));
const inline = [];
for (const m of inlines) {
  const r = m.getBoundingClientRect();
  if (!r.width) continue;
  // The first box, going out from the formula, whose edge the formula crosses: the box that cuts it.
  // Fine when that box scrolls sideways and shows it (a cue); clipped otherwise, or when the page cuts it.
  let cut = null;
  for (let e = m.parentElement; e && e !== document.documentElement; e = e.parentElement) {
    if (getComputedStyle(e).overflowX === "visible") continue;
    const b = e.getBoundingClientRect();
    if (r.right > b.right + 1 || r.left < b.left - 1) { cut = e; break; }
  }
  if (!cut && r.right <= vw + 1 && r.left >= -1) continue;
  const ox = cut ? getComputedStyle(cut).overflowX : "visible";
  const scrolls = !!cut && ["auto", "scroll"].includes(ox) && cut.scrollWidth > cut.clientWidth + 1;
  inline.push({text: (m.getAttribute("aria-label") || m.textContent || "").slice(0, 60), width: Math.ceil(r.width),
               scrolls, cue: scrolls ? cueOf(cut) : null, clipper: cut ? cut.tagName + "." + cut.className : "page"});
}
const tables = [...article.querySelectorAll("table")].filter(t => !t.closest("div.math, .katex-display")).map(t => {
  const r = t.getBoundingClientRect();
  const box = scrollBox(t, article);
  const edge = box ? box.getBoundingClientRect() : {right: vw};
  return {wide: r.width > Math.min(edge.right, vw) - Math.max(r.left, 0) + 1 || r.right > vw + 1,
          scrolls: !!box, cue: box ? cueOf(box) : null, width: Math.ceil(r.width),
          head: (t.querySelector("th, td") || {textContent: ""}).textContent.trim().slice(0, 30)};
}).filter(t => t.wide);
const asides = [...article.querySelectorAll("aside, .margin, .sidebar, aside.sidebar, aside.margin")]
  .filter(a => a.checkVisibility()).map(a => {
    const r = a.getBoundingClientRect();
    return {text: a.textContent.trim().slice(0, 40), fraction: +(r.width / vw).toFixed(2),
            besideText: r.width < 0.8 * (article.clientWidth || vw)};
  });
const figures = [...article.querySelectorAll("img")].filter(i => i.naturalWidth > 100 && i.getBoundingClientRect().width > 0)
  .map(i => ({src: (i.getAttribute("src") || "").slice(0, 60), scale: i.getBoundingClientRect().width / i.naturalWidth,
              // players carry their smallest text (pt) and dpi; a notebook figure is the house style's 10 pt at 100 dpi
              textPt: parseFloat(i.dataset.textPt || "10"), dpi: parseFloat(i.dataset.dpi || "100"),
              alt: (i.getAttribute("alt") || "").slice(0, 80),
              player: !!i.closest(".cl-player")}));
return {display, inline, tables, asides, figures, viewport: vw,
        pageOverflow: document.documentElement.scrollWidth > vw + 1};
"""


# Load every image now (``loading="lazy"`` ones too) and wait for them, at most 15 s.
LOAD_IMAGES_JS = r"""
const done = arguments[arguments.length - 1];
const imgs = [...document.querySelectorAll("img")];
imgs.forEach(i => { i.loading = "eager"; });
const start = Date.now();
(function wait() {
  if (imgs.every(i => i.complete) || Date.now() - start > 15000) return done(imgs.length);
  setTimeout(wait, 100);
})();
"""


def clipped_summary(layout: dict) -> dict:
    """Counts of what a reader at this width cannot see without a hint (see LAYOUT_JS)."""
    disp = layout["display"]
    return {
        "display": len(disp),
        "display_scroll": sum(d["scrolls"] for d in disp),
        "display_no_cue": sum((d["scrolls"] and not d["cue"]) or d["offPage"] for d in disp),
        "eqno_overlap": sum(d["eqnoOverlap"] for d in disp),
        "eqno_on_cut": sum(d.get("eqnoOnCut", False) for d in disp),
        "inline_clipped": sum(not i["scrolls"] or not i["cue"] for i in layout["inline"]),
        "tables_no_cue": sum(not t["scrolls"] or not t["cue"] for t in layout["tables"]),
        "asides_beside_text": sum(a["besideText"] for a in layout["asides"]),
    }


def figure_font_px(figure: dict) -> float:
    """A figure's smallest text on screen in CSS px: its ``textPt`` at its ``dpi``, scaled as shown.

    Players say their smallest text and dpi (``data-text-pt``, ``data-dpi``); a notebook
    figure is taken as the house style's 10 pt at 100 dpi (``course_lib.widgets.house_style``).
    """
    return round(figure["scale"] * figure.get("textPt", 10.0) * figure.get("dpi", 100.0) / 72, 1)


def smallest_figure_font_px(layout: dict) -> float | None:
    """The smallest figure text on screen in CSS px over the page's figures (None: no figure)."""
    sizes = [figure_font_px(f) for f in layout["figures"]]
    return min(sizes) if sizes else None


def axe_js() -> str | None:
    """axe-core 4.x (``axe.min.js``): $AXE_CORE_JS, browser_tests/node_modules (npm ci), else None."""
    for candidate in (os.environ.get("AXE_CORE_JS"),
                      ROOT / "browser_tests" / "node_modules" / "axe-core" / "axe.min.js"):
        if candidate and pathlib.Path(candidate).is_file():
            return pathlib.Path(candidate).read_text(encoding="utf-8")
    return None


def run_axe(drv, source: str) -> dict:
    """axe-core's violations on the current page: {impact: {"rules": n, "nodes": n}} and the rules themselves."""
    if not drv.execute_script("return !!window.axe"):
        drv.execute_script(source)
    drv.set_script_timeout(300)
    result = drv.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "axe.run(document, {resultTypes: ['violations']}).then(r => done(r.violations.map(v => ({"
        "id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.map(n => ({target: n.target.join(' '), "
        "html: n.html.slice(0, 160), summary: (n.failureSummary || '').slice(0, 200)}))}))), e => done({error: String(e)}))"
    )
    if isinstance(result, dict) and "error" in result:
        raise RuntimeError(result["error"])
    counts: dict[str, dict[str, int]] = {}
    for v in result:
        c = counts.setdefault(v["impact"] or "unknown", {"rules": 0, "nodes": 0})
        c["rules"] += 1
        c["nodes"] += len(v["nodes"])
    return {"counts": counts, "violations": result}


_RESOURCES_JS = r"""
const urls = new Set(performance.getEntriesByType("resource").map(e => e.name));
document.querySelectorAll("img[src], link[rel~=stylesheet][href], link[rel=preload][href], script[src]").forEach(e => {
  const u = e.src || e.href; if (u) urls.add(u);
});
document.querySelectorAll("img[srcset]").forEach(e => { if (e.currentSrc) urls.add(e.currentSrc); });
return [...urls];
"""


def _gz(data: bytes) -> int:
    return len(gzip.compress(data, compresslevel=6, mtime=0))


def compressed_weight(drv, root: pathlib.Path, html: bytes, aliases: dict[str, pathlib.Path] | None = None) -> dict:
    """gzip bytes of the page (``html``, as served) and of every distinct same-origin asset it loaded or shows.

    ``root``: the folder the server serves; ``aliases``: URL prefixes served from elsewhere
    (``{"/__mathjax__/": <mathjax dir>}``). Assets on other hosts are listed under ``external``.
    """
    page = urllib.parse.urlsplit(drv.current_url)
    files: dict[str, int] = {}
    external = []
    for url in drv.execute_script(_RESOURCES_JS):
        parts = urllib.parse.urlsplit(url)
        if parts.scheme == "data":
            continue
        if parts.netloc != page.netloc:
            external.append(url)
            continue
        path = urllib.parse.unquote(parts.path)
        target = None
        for prefix, folder in (aliases or {}).items():
            if path.startswith(prefix):
                target = folder / path[len(prefix):]
        target = target or root / path.lstrip("/")
        if target.is_dir():
            target = target / "index.html"
        if target.is_file() and path != page.path:
            files[path] = _gz(target.read_bytes())
    total = _gz(html) + sum(files.values())
    biggest = sorted(files.items(), key=lambda kv: -kv[1])[:8]
    return {"total": total, "html": _gz(html), "assets": len(files), "biggest": biggest, "external": external}


def save(path: pathlib.Path, data) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=1, sort_keys=True))
