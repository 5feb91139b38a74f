#!/usr/bin/env python3
"""Print the built book to one PDF (``make pdf``), for readers who print or read offline.

Every page of ``_toc.yml`` (the front matter, the seven chapters, the notation and
bibliography pages), in the book's order, is opened from the built HTML folder in
headless Chromium (Debian's ``chromium`` and ``chromium-driver``, the browser
test's driver), MathJax is waited for (it ships with the book, so this works
offline), and the page is printed with Chromium's own PDF printer (the theme's
print stylesheet drops the navigation). The pages are then joined with ``pypdf``
and every chapter gets a bookmark. Players print their first frame; solutions
stay collapsed, as in the book.

Why not ``jupyter-book build --builder pdflatex``: it needs a TeX Live
installation (about 1 GB) that the course machines and CI do not have, and
``--builder pdfhtml`` downloads its own Chromium through pyppeteer, which fails
offline. Printing the HTML we already build and test keeps one rendering.

Usage::

    make book && make pdf                              # -> _build/pdf/book.pdf
    python scripts/make_pdf.py --html-dir _build/html --output _build/pdf/book.pdf

The script prints one line per page (``page=... pdf_pages=...``) and a summary
(``pdf=... pages=... chapters=... bytes=...``). Exit status 1 when a page fails to
typeset its maths, when a chapter of ``_toc.yml`` is missing, or when the PDF has
fewer pages than chapters.
"""

from __future__ import annotations

import argparse
import base64
import functools
import http.server
import io
import os
import pathlib
import sys
import threading
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "browser_tests"))


def toc_pages(book_root: pathlib.Path) -> list[tuple[str, str]]:
    """``(html path, title)`` for the root page and every file of ``_toc.yml``, in order."""
    import yaml

    toc = yaml.safe_load((book_root / "_toc.yml").read_text())
    pages = [(toc["root"] + ".html", "Introduction")]

    def walk(node):
        if isinstance(node, dict):
            if "file" in node:
                pages.append((node["file"] + ".html", node.get("title") or pathlib.Path(node["file"]).name))
            for key, value in node.items():
                if key != "file":
                    walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(toc.get("parts", toc.get("chapters", [])))
    return pages


def serve(html_dir: pathlib.Path) -> tuple[str, http.server.ThreadingHTTPServer]:
    """The built book on a local port (fonts and MathJax load as from a web host, not from file://)."""

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(html_dir)))
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{httpd.server_address[1]}/", httpd


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--html-dir", default=str(ROOT / "_build" / "html"))
    ap.add_argument("--output", default=str(ROOT / "_build" / "pdf" / "book.pdf"))
    args = ap.parse_args(argv)
    html_dir = pathlib.Path(args.html_dir)
    if not (html_dir / "index.html").is_file():
        print(f"--html-dir: {html_dir} has no index.html; run `make book` first", file=sys.stderr)
        return 1

    from pypdf import PdfReader, PdfWriter

    from conftest import _WAIT_MATH, make_driver  # the browser test's Chromium and MathJax wait

    drv = make_driver()
    if drv is None:
        print("no chromium/chromedriver: apt-get install -y chromium chromium-driver", file=sys.stderr)
        return 1
    base, httpd = serve(html_dir)
    writer, failures, chapters = PdfWriter(), [], 0
    try:
        drv.set_script_timeout(120)
        for page, title in toc_pages(ROOT):
            if not (html_dir / page).is_file():
                failures.append(f"{page}: not built")
                continue
            drv.get(base + page)
            state = drv.execute_async_script(_WAIT_MATH)
            if state not in ("typeset", "no math"):
                failures.append(f"{page}: maths {state}")
            # Open nothing that the book keeps collapsed; load lazy images before printing.
            drv.execute_script("document.querySelectorAll('img').forEach(i => { i.loading = 'eager'; });")
            time.sleep(0.5)
            pdf = base64.b64decode(drv.execute_cdp_cmd("Page.printToPDF", {
                "printBackground": True, "preferCSSPageSize": False,
                "paperWidth": 8.27, "paperHeight": 11.69,  # A4, inches
                "marginTop": 0.6, "marginBottom": 0.6, "marginLeft": 0.6, "marginRight": 0.6,
                "displayHeaderFooter": True, "headerTemplate": "<span></span>",
                "footerTemplate": '<div style="font-size:8px;width:100%;text-align:center">'
                                  '<span class="title"></span> · <span class="pageNumber"></span></div>',
            })["data"])
            reader = PdfReader(io.BytesIO(pdf))
            start = len(writer.pages)
            for p in reader.pages:
                writer.add_page(p)
            writer.add_outline_item(title=drv.title.split("—")[0].strip() or title, page_number=start)
            chapters += page.startswith("notebooks/")
            print(f"page={page} pdf_pages={len(reader.pages)} maths={state}", flush=True)
    finally:
        drv.quit()
        httpd.shutdown()

    out = pathlib.Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    with open(tmp, "wb") as fh:
        writer.write(fh)
    os.replace(tmp, out)  # atomic: a reader never opens half a PDF
    pages = len(PdfReader(str(out)).pages)
    print(f"pdf={out} pages={pages} chapters={chapters} bytes={out.stat().st_size}")
    if chapters < 7 or pages < chapters:
        failures.append(f"the PDF holds {chapters} chapters in {pages} pages; want all 7")
    for f in failures:
        print(f"FAILED {f}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
