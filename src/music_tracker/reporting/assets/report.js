// Draws the cards of a report page from the JSON in #mt-cards (rows inline, specs without
// data). Ranked lists of artists, tracks and albums are HTML (names are links, long names
// wrap on a phone); other charts are Vega-Lite, themed from report.css's colours (light or
// dark, as the reader's system is set). Sets data-rendered on <body> when every card is
// drawn, and collects errors in window.MT_ERRORS, so a headless browser can check the page.
(function () {
  "use strict";
  window.MT_ERRORS = [];
  const source = document.getElementById("mt-cards");
  const cards = source ? JSON.parse(source.textContent) : [];
  const format = new Intl.NumberFormat("en", { maximumFractionDigits: 2 });
  const style = getComputedStyle(document.documentElement);
  const css = function (name) { return style.getPropertyValue(name).trim(); };

  function words(column) {
    return column.replace(/_pct$/, " %").replace(/_/g, " ");
  }

  // The words for a card's column: the definition's (card.titles, one per column, from
  // definitions.column_title or the card's `titles`), else the column's name in words
  function title(card, column) {
    const i = card.columns.indexOf(column);
    const given = card.titles && i >= 0 ? card.titles[i] : null;
    return typeof given === "string" ? given : words(column);
  }

  function objects(card) {
    return card.rows.map(function (row) {
      const item = {};
      card.columns.forEach(function (name, i) { item[name] = row[i]; });
      return item;
    });
  }

  function show(value) {
    if (value === null || value === undefined) return "\u2014";
    return typeof value === "number" ? format.format(value) : String(value);
  }

  function empty(body, card) {
    const p = document.createElement("p");
    p.className = "empty";
    // `command` in a definition's text is shown as code
    ((card && card.empty) || "Nothing to show for this period.").split("`").forEach(function (part, i) {
      if (i % 2) { const code = document.createElement("code"); code.textContent = part; p.append(code); }
      else p.append(part);
    });
    body.replaceChildren(p);
  }

  function cell(tag, value, href, numeric) {
    const element = document.createElement(tag);
    if (href) {
      const link = document.createElement("a");
      link.href = href;
      link.textContent = show(value);
      element.appendChild(link);
    } else {
      element.textContent = show(value);
    }
    if (numeric) element.className = "num";
    else if (href) element.className = "name";  // names wrap; the numbers stay in view
    return element.outerHTML;
  }

  function kpi(card, body) {
    const value = card.rows.length ? card.rows[0][0] : null;
    // no figure: the card's own words for why (the "empty" of its definition), if it has any
    if ((value === null || value === undefined) && card.empty) return empty(body, card);
    const unit = card.unit ? "<span class='unit'>" + card.unit + "</span>" : "";
    body.innerHTML = "<div class='kpi'>" + show(value) + unit + "</div>";
  }

  // A one-row table (an artist's facts, the streaks) as labelled figures, which fit a phone
  function facts(card, body) {
    const links = card.links || {};
    const row = card.rows[0];
    body.innerHTML = "<dl class='facts'>" + card.columns.map(function (c, i) {
      const hrefs = links[c];
      return "<div>" + cell("dt", title(card, c), null, false) +
        cell("dd", row[i], hrefs ? hrefs[0] : null, false) + "</div>";
    }).join("") + "</dl>";
  }

  function table(card, body) {
    if (!card.rows.length) return empty(body, card);
    if (card.rows.length === 1 && card.columns.length > 1) return facts(card, body);
    const links = card.links || {};
    const numeric = card.columns.map(function (c, i) {
      return card.rows.some(function (row) { return typeof row[i] === "number"; });
    });
    const head = card.columns.map(function (c, i) {
      return cell("th", title(card, c), null, numeric[i]).replace("<th", "<th scope='col'");
    }).join("");
    const rows = card.rows.map(function (row, r) {
      return "<tr>" + row.map(function (v, i) {
        const hrefs = links[card.columns[i]];
        return cell("td", v, hrefs ? hrefs[r] : null, typeof v === "number");
      }).join("") + "</tr>";
    }).join("");
    body.innerHTML = "<div class='table-scroll' tabindex='0' role='region' aria-label='" +
      words(card.name) + "'><table><thead><tr>" + head + "</tr></thead><tbody>" + rows +
      "</tbody></table></div>";
  }

  // A bar chart of names (artists, tracks, albums) as a ranked list: each name a link
  // where it has a page, its value, and a bar scaled to the largest.
  function ranked(card, body) {
    if (!card.rows.length) return empty(body, card);
    const x = card.columns.indexOf(card.x);
    const y = card.columns.indexOf(card.y);
    const hrefs = (card.links || {})[card.y] || [];
    const order = card.rows.map(function (row, i) { return i; });
    if (card.sort === "-x") order.sort(function (a, b) { return card.rows[b][x] - card.rows[a][x]; });
    if (card.sort === "x") order.sort(function (a, b) { return card.rows[a][x] - card.rows[b][x]; });
    const most = Math.max.apply(null, card.rows.map(function (row) { return row[x] || 0; })) || 1;
    const unit = card.unit ? " " + card.unit : "";
    const items = order.map(function (i) {
      const row = card.rows[i];
      const width = Math.max(0.5, 100 * (row[x] || 0) / most).toFixed(1);
      return "<li>" + cell("span", row[y], hrefs[i], false).replace("<span", "<span class='name'") +
        "<span class='value'>" + show(row[x]) + unit + "</span>" +
        "<svg class='bar' viewBox='0 0 100 4' preserveAspectRatio='none' aria-hidden='true'>" +
        "<rect width='" + width + "' height='4'></rect></svg></li>";
    }).join("");
    // the measure's words ("Hours"); its unit is on every value
    body.innerHTML = "<p class='measure'>" + cell("span", title(card, card.x)) +
      "</p><ol class='ranked'>" +
      items + "</ol>";
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
    if (!card.rows.length) { empty(body, card); return Promise.resolve(); }
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

  const sections = Array.from(document.querySelectorAll("section.card"));
  const pending = new Map();  // section -> its chart, not drawn yet
  let queue = Promise.resolve();

  function finished() {
    if (!pending.size) document.body.dataset.rendered = String(sections.length);
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
    sections.forEach(draw);
    return queue.then(finished);
  };
  window.addEventListener("beforeprint", window.MT_DRAW_ALL);

  sections.forEach(function (section) {
    const card = cards[Number(section.dataset.card)];
    const body = section.querySelector(".body");
    try {
      if (card.viz === "kpi") kpi(card, body);
      else if (card.viz === "table") table(card, body);
      else if (card.ranked) ranked(card, body);
      else if (!card.rows.length) empty(body, card);
      else pending.set(section, { card: card, body: body });
    } catch (error) {
      window.MT_ERRORS.push(card.name + ": " + error);
    }
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
