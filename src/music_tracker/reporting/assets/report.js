// Draws the charts of a report page from the JSON in #mt-cards (each chart's rows inline,
// its spec without data). Every other card (figures, tables, ranked lists, empty cards) is
// in the page as written. Charts are Vega-Lite, themed from report.css's colours (light or
// dark, as the reader's system is set). Sets data-rendered on <body> when every chart is
// drawn, and collects errors in window.MT_ERRORS, so a headless browser can check the page.
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

  function palette() {
    const colours = [];
    for (let i = 1; i <= 8; i += 1) colours.push(css("--c" + i));
    return colours;
  }

  // One theme for every chart: the page's colours and type, the colour-blind-safe palette
  function theme() {
    const ink = css("--ink"), muted = css("--muted"), line = css("--line");
    const colours = palette();
    const axis = { labelColor: muted, titleColor: ink, gridColor: line, domainColor: line,
                   tickColor: line };
    return {
      background: null,
      font: css("--font"),
      axis: axis,
      legend: { labelColor: muted, titleColor: ink },
      view: { stroke: null },
      range: { category: colours },
      bar: { color: colours[0] },
      line: { color: colours[0] },
      area: { color: colours[0] },
      point: { color: colours[0] },
      circle: { color: colours[5] },
      geoshape: { fill: css("--land"), stroke: css("--surface") },
      text: { color: ink },
    };
  }

  const TYPE = { labelFontSize: 12, titleFontSize: 12 };
  let config = null;
  function chart(card, body) {
    config = config || theme();
    const spec = JSON.parse(JSON.stringify(card.spec));
    // the type scale: no chart text under 12 px (a phone's smallest legible size)
    spec.config = spec.config || {};
    ["axis", "legend"].forEach(function (part) {
      spec.config[part] = Object.assign({}, spec.config[part], TYPE);
    });
    const values = objects(card);
    let mode = "vega-lite";
    if (Array.isArray(spec.data)) {  // a Vega spec (treemap): no "container" width in Vega
      spec.data[0].values = values;
      spec.width = Math.max(200, body.clientWidth - 10);
      mode = "vega";
    } else if (spec.layer) {  // the map: the world's outline, then the bubbles
      spec.layer[0].data = window.MT_WORLD
        ? { values: window.MT_WORLD, format: { type: "topojson", feature: "countries" } }
        : { graticule: { step: [30, 30] } };  // no map data installed: a grid instead
      spec.layer[1].data = { values: values };
      delete spec.data;
    } else {
      spec.data = { values: values };
    }
    return window.vegaEmbed(body, spec, {
      mode: mode, actions: false, renderer: "svg", config: config,
    });
  }

  // Vega (900 kB) and the world map are loaded when the first chart comes near the screen,
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

  async function drawChart(card, body) {
    await load("vega.js", function () { return !!window.vegaEmbed; });
    if (card.viz === "map") await load("world.js", function () { return "MT_WORLD" in window; });
    await chart(card, body);
  }

  const pending = new Map();  // section -> its chart, not drawn yet
  let queue = Promise.resolve();

  function finished() {
    if (!pending.size) document.body.dataset.rendered = String(charts.length);
  }

  // one chart at a time, each in its own task, so the page stays responsive meanwhile
  function draw(section) {
    const job = pending.get(section);
    if (!job) return queue;
    pending.delete(section);
    queue = queue.then(function () {
      return new Promise(function (resolve) { setTimeout(resolve, 0); });
    }).then(function () { return drawChart(job.card, job.body); }).catch(function (error) {
      window.MT_ERRORS.push(job.card.name + ": " + error);
    }).then(finished);
    return queue;
  }

  // Every chart now, wherever it is on the page (printing, screenshots of whole pages)
  window.MT_DRAW_ALL = function () {
    Array.from(pending.keys()).forEach(draw);
    return queue.then(finished);
  };
  window.addEventListener("beforeprint", window.MT_DRAW_ALL);

  charts.forEach(function (card) {
    const section = document.querySelector("section.card[data-card='" + card.card + "']");
    if (section) pending.set(section, { card: card, body: section.querySelector(".body") });
  });
  if (!("IntersectionObserver" in window)) {
    window.MT_DRAW_ALL();
  } else {
    const observer = new IntersectionObserver(function (entries) {
      entries.forEach(function (entry) {
        if (entry.isIntersecting) { observer.unobserve(entry.target); draw(entry.target); }
      });
    }, { rootMargin: "200px 0px" });
    // after the first paint: the page's words and figures come before the chart library
    requestAnimationFrame(function () {
      setTimeout(function () {
        pending.forEach(function (job, section) { observer.observe(section); });
      }, 0);
    });
    finished();
  }
})();
