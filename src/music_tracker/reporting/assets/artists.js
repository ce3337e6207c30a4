// The artist index's search box: narrows the list as you type, in the page itself (works
// from disk, no server). Each item's data-key is its name in lower case without accents,
// written by the report, so "bjork" finds Björk.
(function () {
  "use strict";
  const input = document.getElementById("artist-search");
  const items = Array.from(document.querySelectorAll("ol.artist-list li"));
  const count = document.getElementById("artist-count");
  const none = document.getElementById("artist-none");
  function fold(text) {
    return text.normalize("NFKD").replace(/[\u0300-\u036f]/g, "").toLowerCase().trim();
  }
  function filter() {
    const query = fold(input.value);
    let shown = 0;
    items.forEach(function (item) {
      const match = !query || item.dataset.key.indexOf(query) !== -1;
      item.hidden = !match;
      if (match) shown += 1;
    });
    count.textContent = query ? shown + " of " + items.length + " artists" : "";
    none.hidden = shown !== 0;
  }
  input.addEventListener("input", filter);
  if (input.value) filter();  // a value kept by the browser on going back
})();
