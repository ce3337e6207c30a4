// Draws the charts of a report page from the JSON in #mt-cards (each chart's rows inline,
// its spec without data). Every other card (figures, tables, ranked lists, empty cards) is
// in the page as written. Charts are Vega specs compiled when the report was written,
// themed from report.css's colours (light or dark, as the reader's system is set). Sets
// data-rendered on <body> when every chart shown is drawn (a ranked card's other ordering
// is drawn when chosen), and collects errors in window.MT_ERRORS, so a headless browser
// can check the page.
(function () {
  "use strict";
  window.MT_ERRORS = [];
  const source = document.getElementById("mt-cards");
  const charts = source ? JSON.parse(source.textContent) : [];
  const style = getComputedStyle(document.documentElement);
  const css = function (name) { return style.getPropertyValue(name).trim(); };

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

  // A Vega spec compiled when the report was written (charts.py): its "rows" data set gets
  // the card's rows (the map's countries are a picture, assets/world.svg)
  function chart(card, body) {
    const spec = themed(card.spec);
    spec.data.forEach(function (data) {
      if (data.name === "rows") data.values = objects(card);
    });
    if (card.viz === "treemap") spec.width = Math.max(200, body.clientWidth - 10);
    body.replaceChildren();  // the map's picture, shown until the chart is drawn
    const view = new window.vega.View(window.vega.parse(spec), {
      renderer: "svg", container: body, hover: true, loader: plainImages(),
    });
    return view.runAsync();
  }

  // Vega's runtime (580 kB) is loaded when the first chart comes near the screen (100 px),
  // not before: the page's text and figures show at once, and a page read on a phone
  // draws only the charts scrolled to.
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
  let queue = Promise.resolve();

  function finished() {
    const waiting = Array.from(pending.keys()).filter(shown);
    if (!waiting.length) document.body.dataset.rendered = String(charts.length - pending.size);
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
    Array.from(pending.keys()).filter(shown).forEach(draw);
    return queue.then(finished);
  };
  window.addEventListener("beforeprint", window.MT_DRAW_ALL);

  charts.forEach(function (card) {
    const box = document.querySelector(".chart[data-chart='" + card.chart + "']");
    if (box) pending.set(box, { card: card });
  });
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
    // after the first paint: the page's words and figures come before the chart library
    requestAnimationFrame(function () {
      setTimeout(function () {
        pending.forEach(function (job, box) { observer.observe(box); });
      }, 0);
    });
    finished();
  }
})();
