// Draws the charts of a report page from the JSON in #mt-cards (each chart's rows inline,
// its spec without data). Every other card (figures, tables, ranked lists, empty cards) is
// in the page as written, and so are the first charts of a dashboard, drawn ahead at a
// phone's width (pictures.py): on a screen about that wide they stay as they are until the
// reader points at one (then it is drawn live, for its tooltips), so a phone starts no
// chart library until it scrolls to a chart not drawn ahead. Charts are Vega specs
// compiled when the report was written, themed from report.css's colours (light or dark,
// as the reader's system is set). Sets data-rendered on <body> when every chart shown is
// drawn (a ranked card's other ordering is drawn when chosen), and collects errors in
// window.MT_ERRORS, so a headless browser can check the page.
(function () {
  "use strict";
  window.MT_ERRORS = [];
  const source = document.getElementById("mt-cards");
  const charts = source ? JSON.parse(source.textContent) : [];
  let style = null;  // read when the first chart is drawn, not before the first paint
  const css = function (name) {
    style = style || getComputedStyle(document.documentElement);
    return style.getPropertyValue(name).trim();
  };

  function objects(card) {
    return card.rows.map(function (row) {
      const item = {};
      card.columns.forEach(function (name, i) { item[name] = row[i]; });
      return item;
    });
  }

  // The specs name report.css's variables for their colours and font ("var(--ink)"): each
  // becomes its value, light or dark as the reader's system is set
  function themed(spec) {
    return JSON.parse(JSON.stringify(spec).replace(/var\((--[a-z0-9-]+)\)/g, function (m, name) {
      return JSON.stringify(css(name)).slice(1, -1);
    }));
  }

  // The map's picture of the countries is a file of the site, loaded as a plain image:
  // Vega asks for it with CORS, which a page opened from disk cannot grant
  function plainImages() {
    const loader = window.vega.loader();
    const sanitize = loader.sanitize;
    loader.sanitize = function (uri, options) {
      return sanitize.call(loader, uri, options).then(function (found) {
        return { href: found.href, crossOrigin: null };
      });
    };
    return loader;
  }

  // On a phone's one column a map is as tall as the world at its width, its legend
  // below (charts.by_width, as its picture is drawn), not fitted into its grid cell
  const grid = window.matchMedia("(min-width: 800px)");
  function byWidth(spec) {
    delete spec.height;
    spec.autosize = Object.assign({}, spec.autosize, { type: "fit-x" });
    spec.signals = (spec.signals || []).filter(function (s) { return s.name !== "height"; })
      .concat([{ name: "height", update: "round(width / world_aspect)" }]);
  }

  // A Vega spec compiled when the report was written (charts.py): its "rows" data set gets
  // the card's rows (the map's countries are a picture, assets/world.svg)
  function chart(card, body) {
    const spec = themed(card.spec);
    spec.data.forEach(function (data) {
      if (data.name === "rows") data.values = objects(card);
    });
    if (card.viz === "treemap") spec.width = Math.max(200, body.clientWidth - 10);
    if (card.viz === "map" && !grid.matches) byWidth(spec);
    body.replaceChildren();  // the map's picture, shown until the chart is drawn
    const view = new window.vega.View(window.vega.parse(spec), {
      renderer: "svg", container: body, hover: true, loader: plainImages(),
    });
    return view.runAsync();
  }

  // Vega's runtime (580 kB) is loaded when the first chart to draw live comes near the
  // screen (100 px), not before: the page's text, figures and pictures show at once, and
  // a page read on a phone draws only the charts scrolled to.
  const assets = (document.currentScript || {}).src
    ? document.currentScript.src.replace(/report\.js[^/]*$/, "") : "../assets/";
  const loading = {};
  function load(name, ready) {
    if (ready()) return Promise.resolve();
    loading[name] = loading[name] || new Promise(function (resolve, reject) {
      const script = document.createElement("script");
      script.src = assets + name;
      script.onload = resolve;
      script.onerror = function () { reject(new Error(name + " could not be loaded")); };
      document.head.appendChild(script);
    });
    return loading[name];
  }

  function nextTask() {
    return new Promise(function (resolve) { setTimeout(resolve, 0); });
  }

  async function drawChart(card, body) {
    if (!window.vega) {
      await load("vega.js", function () { return !!window.vega; });
      await nextTask();  // Vega's own start-up and the first chart: two tasks, not one
    }
    await chart(card, body);
  }

  // A ranked card holds both orderings, one shown (report.css, radio buttons): a chart
  // of the hidden one waits until it is shown, since a hidden box has no size to fit.
  function shown(box) { return box.getClientRects().length > 0; }

  const pending = new Map();  // chart box -> its chart, not drawn yet
  const still = new Map();  // chart box -> its chart, drawn ahead and shown as it is
  let queue = Promise.resolve();
  let ready = false;  // every chart sorted into pending and still (setUp)

  function finished() {
    const waiting = Array.from(pending.keys()).filter(shown);
    if (ready && !waiting.length) {
      document.body.dataset.rendered = String(charts.length - pending.size);
    }
  }

  // one chart at a time, each in its own task, so the page stays responsive meanwhile
  function draw(box) {
    const job = pending.get(box);
    if (!job) return queue;
    pending.delete(box);
    queue = queue.then(nextTask).then(function () { return drawChart(job.card, box); }).then(function () {
      box.dataset.drawn = "";
    }).catch(function (error) {
      window.MT_ERRORS.push(job.card.name + ": " + error);
    }).then(finished);
    return queue;
  }

  // Every chart shown now, wherever it is on the page (printing, screenshots of whole pages)
  window.MT_DRAW_ALL = function () {
    setUp();
    Array.from(pending.keys()).filter(shown).forEach(draw);
    return queue.then(finished);
  };
  window.addEventListener("beforeprint", window.MT_DRAW_ALL);

  // A picture drawn ahead serves a phone's one column (report.css), on a box from three
  // quarters of its width to a third more; the grid of a wider screen, whose cards have
  // their rows' height, draws every chart live, as it comes near the screen
  function fits(box) {
    const picture = box.querySelector("svg.pre");
    const drawnAt = picture ? Number(picture.getAttribute("width")) : 0;
    return drawnAt > 0 && !grid.matches
      && box.clientWidth >= 0.75 * drawnAt && box.clientWidth <= 1.34 * drawnAt;
  }

  const wakers = ["pointerenter", "touchstart"];
  function wake(event) {
    const box = event.currentTarget;
    wakers.forEach(function (name) { box.removeEventListener(name, wake); });
    const job = still.get(box);
    if (!job) return;
    still.delete(box);
    pending.set(box, job);
    draw(box);
  }

  // Each chart stays as drawn ahead (until pointed at) or waits to be drawn live. Done
  // after the first paint: measuring the boxes' widths lays the page out.
  function setUp() {
    if (ready) return;
    ready = true;
    charts.forEach(function (card) {
      const box = document.querySelector(".chart[data-chart='" + card.chart + "']");
      if (!box) return;
      if (card.ahead && fits(box)) {
        still.set(box, { card: card });
        wakers.forEach(function (name) { box.addEventListener(name, wake, { passive: true }); });
      } else {
        pending.set(box, { card: card });
      }
    });
  }
  // the other ordering of a ranked card, chosen: its chart now (when it has one)
  document.addEventListener("change", function (event) {
    const section = event.target.closest && event.target.closest("section.ranks");
    if (!section) return;
    section.querySelectorAll(".chart[data-chart]").forEach(function (box) {
      if (pending.has(box) && shown(box)) draw(box);
    });
  });
  if (!("IntersectionObserver" in window)) {
    window.MT_DRAW_ALL();
  } else {
    const observer = new IntersectionObserver(function (entries) {
      entries.forEach(function (entry) {
        if (entry.isIntersecting) { observer.unobserve(entry.target); draw(entry.target); }
      });
    }, { rootMargin: "100px 0px" });
    // after the first paint: the page's words, figures and pictures come before the rest
    requestAnimationFrame(function () {
      setTimeout(function () {
        setUp();
        pending.forEach(function (job, box) { observer.observe(box); });
        finished();
      }, 0);
    });
  }
})();
