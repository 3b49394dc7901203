// The live dashboard: the server sends the table's rows (rendered HTML) whenever the
// accounts change (server-sent events on the table's data-live URL); this swaps them in,
// and says so in the polite live region for screen readers. No build step, no library.
(() => {
  "use strict";
  const table = document.querySelector("table[data-live]");
  if (!table || !("EventSource" in window)) return;
  const body = table.tBodies[0];
  const status = document.getElementById("live-status");
  let last = null;
  const source = new EventSource(table.dataset.live);
  source.addEventListener("accounts", (message) => {
    const update = JSON.parse(message.data);
    if (update.rows === last) return;
    const first = last === null;
    last = update.rows;
    body.innerHTML = update.rows;
    // The first message is the table as it is when the feed opened: no news to announce.
    if (status && !first) {
      status.textContent = `${update.count}, updated at ${new Date().toLocaleTimeString()}`;
    }
    table.dataset.updates = String(Number(table.dataset.updates || 0) + 1);
  });
  source.addEventListener("open", () => table.setAttribute("data-connected", "true"));
  source.addEventListener("error", () => table.removeAttribute("data-connected"));
})();
