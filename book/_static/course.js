/* The book's reading aids (loaded by _config.yml: html_js_files; styles in course.css).
 * Checked in headless Chromium at 1400 px and 400 px by browser_tests/.
 *
 * - Boxes that scroll sideways (display and inline maths, tables, wide outputs)
 *   get cl-more-left / cl-more-right while content hides past that edge: the
 *   CSS fades that edge, so a reader sees that there is more.
 * - A display equation too wide for its column (cl-wide) shows its number
 *   under the formula, so the number never sits on the cut.
 * - A table wider than the column that has no scrolling box gets one (cl-scroll).
 * Runs after MathJax's first typeset, on resize, and when a collapsed cell opens.
 */
(function () {
  "use strict";
  var SCROLLERS = [
    ".bd-article div.math > mjx-container",
    ".bd-article span.math",
    ".bd-article .pst-scrollable-table-container",
    ".bd-article .cl-scroll",
    ".bd-article div.cell_output .output",
  ].join(", ");

  function mark(box) {
    var ox = getComputedStyle(box).overflowX;
    var extra = box.scrollWidth - box.clientWidth;
    var scrolls = extra > 1 && box.clientWidth > 0 && (ox === "auto" || ox === "scroll");
    box.classList.toggle("cl-scrolls", scrolls);
    box.classList.toggle("cl-more-left", scrolls && box.scrollLeft > 1);
    box.classList.toggle("cl-more-right", scrolls && extra - box.scrollLeft > 1);
  }

  function scrollingAncestor(el, stop) {
    for (var e = el.parentElement; e && e !== stop; e = e.parentElement) {
      var ox = getComputedStyle(e).overflowX;
      if (ox === "auto" || ox === "scroll") return e;
    }
    return null;
  }

  function wrapTables(article) {
    article.querySelectorAll("table").forEach(function (table) {
      if (table.closest("div.math") || scrollingAncestor(table, article)) return;
      if (table.getBoundingClientRect().width <= article.clientWidth + 1) return;
      var box = document.createElement("div");
      box.className = "cl-scroll";
      table.parentNode.insertBefore(box, table);
      box.appendChild(table);
    });
  }

  function layout() {
    var article = document.querySelector(".bd-article");
    if (!article) return;
    article.querySelectorAll("div.math").forEach(function (d) {
      var c = d.querySelector(":scope > mjx-container");
      if (!c) return;
      d.classList.remove("cl-wide");
      if (c.scrollWidth > c.clientWidth + 1) d.classList.add("cl-wide");
    });
    wrapTables(article);
    article.querySelectorAll(SCROLLERS).forEach(function (box) {
      mark(box);
      if (!box.dataset.clWatched) {
        box.dataset.clWatched = "1";
        box.addEventListener("scroll", function () { mark(box); }, { passive: true });
      }
    });
  }

  var timer = null;
  function later() {
    clearTimeout(timer);
    timer = setTimeout(layout, 120);
  }

  function start() {
    layout();
    var mj = window.MathJax;
    if (mj && mj.startup && mj.startup.promise) {
      mj.startup.promise.then(function () {
        layout();
        if (document.fonts) document.fonts.ready.then(later);
      });
    } else if (document.fonts) {
      document.fonts.ready.then(later);
    }
    window.addEventListener("resize", later);
    document.addEventListener("toggle", later, true);  // a <details> (Show solution) opened
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
