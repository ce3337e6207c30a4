// Draws the cards of a report page from window.MT_CARDS (rows inline, specs without data).
// Sets data-rendered on <body> when every card is drawn, and collects errors in
// window.MT_ERRORS, so a headless browser can check the page.
(function () {
  "use strict";
  window.MT_ERRORS = [];
  const format = new Intl.NumberFormat("en", { maximumFractionDigits: 2 });

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

  function kpi(card, body) {
    const value = card.rows.length ? card.rows[0][0] : null;
    const unit = card.unit ? "<span class='unit'>" + card.unit + "</span>" : "";
    body.innerHTML = "<div class='kpi'>" + show(value) + unit + "</div>";
  }

  function table(card, body) {
    if (!card.rows.length) return empty(body, card);
    const numeric = card.columns.map(function (c, i) {
      return card.rows.some(function (row) { return typeof row[i] === "number"; });
    });
    const head = card.columns.map(function (c, i) {
      const title = (card.titles && card.titles[i]) || c.replace(/_/g, " ");
      return "<th" + (numeric[i] ? " class='num'" : "") + ">" + title + "</th>";
    }).join("");
    const rows = card.rows.map(function (row) {
      return "<tr>" + row.map(function (v) {
        const text = document.createElement("td");
        text.textContent = show(v);
        if (typeof v === "number") text.className = "num";
        return text.outerHTML;
      }).join("") + "</tr>";
    }).join("");
    body.innerHTML = "<table><thead><tr>" + head + "</tr></thead><tbody>" + rows + "</tbody></table>";
  }

  function chart(card, body) {
    if (!card.rows.length) { empty(body, card); return Promise.resolve(); }
    const spec = JSON.parse(JSON.stringify(card.spec));
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
    return window.vegaEmbed(body, spec, { mode: mode, actions: false, renderer: "svg" });
  }

  const work = [];
  document.querySelectorAll("section.card").forEach(function (section) {
    const card = window.MT_CARDS[Number(section.dataset.card)];
    const body = section.querySelector(".body");
    try {
      if (card.viz === "kpi") kpi(card, body);
      else if (card.viz === "table") table(card, body);
      else work.push(chart(card, body).catch(function (error) {
        window.MT_ERRORS.push(card.name + ": " + error);
      }));
    } catch (error) {
      window.MT_ERRORS.push(card.name + ": " + error);
    }
  });
  Promise.all(work).then(function () {
    document.body.dataset.rendered = String(document.querySelectorAll("section.card").length);
  });
})();
