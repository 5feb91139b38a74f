#!/usr/bin/env python3
"""Measure built book pages in headless Chromium: the numbers of ``book/STACK.md``.

Usage::

    python browser_tests/measure.py --html-dir _build/html --out _build/screenshots/measure.json \
        index.html notebooks/01_change_of_variables_nice.html notebooks/04_reinforce.html

For each page: maths with every non-local host blocked (rendered, or raw TeX left);
at 400 px the display equations that scroll without a cue, equation numbers over
their formula, inline maths cut off, tables without a cue, side boxes beside the
text and the smallest figure text; axe-core violations by impact in light and
dark mode; the compressed (gzip) weight of the page and every asset it loads;
time to the last typeset formula on DevTools' Fast 3G (1.6 Mb/s), after first
paint. ``--skip-throttle`` leaves the slow part out. A page that loads MathJax
from the CDN is served the local copy (django-static-mathjax) for weight and
timing, as the CDN would serve it, and not for the offline check.
"""

from __future__ import annotations

import argparse
import functools
import http.server
import json
import pathlib
import sys
import threading
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

import metrics  # noqa: E402
from conftest import MATHJAX_CDN, NARROW, WIDE, _Handler, _mathjax_dir, make_driver, set_width  # noqa: E402

_RAW_TEX_JS = r"""
const article = document.querySelector(".bd-article, article, main") || document.body;
const skip = "pre, code, script, style, textarea, mjx-container, .katex, .highlight, math";
const raw = [];
const walker = document.createTreeWalker(article, NodeFilter.SHOW_TEXT);
for (let n = walker.nextNode(); n; n = walker.nextNode()) {
  if (n.parentElement.closest(skip)) continue;
  const t = n.textContent;
  if (/\$\$|\\begin|\\\(|\\\[|\\frac|\\mathbb|\\log/.test(t)) raw.push(t.trim().slice(0, 60));
}
const rendered = article.querySelectorAll("mjx-container, .katex").length;
return {raw: raw.length, rendered, sample: raw.slice(0, 3)};
"""


def serve(root: pathlib.Path, rewrite_cdn: bool):
    mathjax = _mathjax_dir() if rewrite_cdn else None
    handler = functools.partial(type("H", (_Handler,), {"mathjax": mathjax}), directory=str(root))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd, f"http://127.0.0.1:{httpd.server_address[1]}/"


def wait_math(drv, timeout: float = 25.0) -> str:
    drv.set_script_timeout(timeout + 5)
    return drv.execute_async_script(
        """
        const done = arguments[arguments.length - 1], start = Date.now(), limit = arguments[0] * 1000;
        (function wait() {
          if (document.readyState !== "complete") return setTimeout(wait, 50);
          const mj = document.querySelector('script[src*="mathjax" i], script[src*="tex-"]');
          if (!mj) return document.fonts.ready.then(() => done("no MathJax"));
          if (window.MathJax && MathJax.startup && MathJax.startup.promise)
            return MathJax.startup.promise.then(() => done("typeset"), e => done("error: " + e));
          if (Date.now() - start > limit) return done("MathJax did not load");
          setTimeout(wait, 50);
        })();
        """,
        timeout,
    )


def served_html(root: pathlib.Path, page: str, rewrite: bool) -> bytes:
    path = root / page
    if path.is_dir():
        path = path / "index.html"
    text = path.read_text(encoding="utf-8")
    if rewrite and _mathjax_dir() is not None:
        text = text.replace(MATHJAX_CDN, "/__mathjax__/")
    return text.encode("utf-8")


def measure_page(drv, root, page, plain_url, local_url, axe_source, shots, throttled: bool) -> dict:
    out: dict = {"page": page}
    slug = page.replace("/", "_").removesuffix(".html") or "index"

    metrics.block_non_local(drv)
    set_width(drv, WIDE)
    drv.get(plain_url + page)
    out["offline_math_state"] = wait_math(drv, 20)
    out["offline"] = drv.execute_script(_RAW_TEX_JS)

    drv.get(local_url + page)
    wait_math(drv)
    time.sleep(0.3)
    out["weight"] = metrics.compressed_weight(
        drv, root, served_html(root, page, True),
        {"/__mathjax__/": _mathjax_dir()} if _mathjax_dir() else None)
    if axe_source:
        out["axe_light"] = metrics.run_axe(drv, axe_source)
        set_width(drv, WIDE, dark=True)
        drv.get(local_url + page)
        wait_math(drv)
        time.sleep(0.3)
        out["axe_dark"] = metrics.run_axe(drv, axe_source)

    set_width(drv, NARROW)
    drv.get(local_url + page)
    wait_math(drv)
    time.sleep(0.3)
    drv.execute_async_script(metrics.LOAD_IMAGES_JS)  # lazy images too: the figure scale needs their size
    layout = drv.execute_script(metrics.LAYOUT_JS)
    out["layout_400"] = layout
    out["clipped_400"] = metrics.clipped_summary(layout)
    out["smallest_figure_px_400"] = metrics.smallest_figure_font_px(layout)
    if shots:
        drv.save_screenshot(str(shots / f"{slug}-{NARROW}.png"))
        wide = [d for d in layout["display"] if d["scrolls"]]
        if wide:
            drv.execute_script(
                "const ds = [...document.querySelectorAll('div.math, .katex-display, div.math-display')]"
                ".filter(d => d.scrollWidth > d.clientWidth + 1 || [...d.querySelectorAll('*')].some(e => e.scrollWidth > e.clientWidth + 1));"
                "if (ds[0]) ds[0].scrollIntoView({block: 'center'});")
            time.sleep(0.2)
            drv.save_screenshot(str(shots / f"{slug}-{NARROW}-wide-equation.png"))
    metrics.unblock(drv)
    if throttled:
        set_width(drv, WIDE)
        metrics.block_non_local(drv)
        out["throttled"] = metrics.time_to_math(drv, local_url + page)
        metrics.unblock(drv)
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("pages", nargs="+", help="pages relative to --html-dir (index.html, notebooks/04_reinforce.html)")
    parser.add_argument("--html-dir", default="_build/html")
    parser.add_argument("--out", default="_build/screenshots/measure.json")
    parser.add_argument("--screenshots", default=None, help="folder for 400 px screenshots")
    parser.add_argument("--skip-throttle", action="store_true")
    parser.add_argument("--label", default="")
    args = parser.parse_args(argv)
    root = pathlib.Path(args.html_dir).resolve()
    shots = pathlib.Path(args.screenshots) if args.screenshots else None
    if shots:
        shots.mkdir(parents=True, exist_ok=True)
    plain, plain_url = serve(root, rewrite_cdn=False)
    local, local_url = serve(root, rewrite_cdn=True)
    axe_source = metrics.axe_js()
    if axe_source is None:
        print("measure: no axe-core 4 (cd browser_tests && npm ci): accessibility not measured", file=sys.stderr)
    drv = make_driver()
    results = []
    try:
        for page in args.pages:
            t0 = time.time()
            r = measure_page(drv, root, page, plain_url, local_url, axe_source, shots, not args.skip_throttle)
            r["label"] = args.label
            results.append(r)
            print(json.dumps(summary(r)), f"({time.time() - t0:.0f} s)", flush=True)
    finally:
        drv.quit()
        plain.shutdown()
        local.shutdown()
    metrics.save(pathlib.Path(args.out), results)
    return 0


def summary(r: dict) -> dict:
    def axe(key):
        counts = r.get(key, {}).get("counts", {})
        return {k: f"{v['rules']}/{v['nodes']}" for k, v in sorted(counts.items())}
    return {
        "page": r["page"],
        "offline": f"{r['offline_math_state']}; rendered {r['offline']['rendered']}, raw TeX {r['offline']['raw']}",
        "gzip_kB": round(r["weight"]["total"] / 1e3),
        "clipped_400": r["clipped_400"],
        "fig_px": r["smallest_figure_px_400"],
        "axe_light": axe("axe_light"), "axe_dark": axe("axe_dark"),
        "throttled": r.get("throttled"),
    }


if __name__ == "__main__":
    sys.exit(main())
