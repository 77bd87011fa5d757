// Keeps the "have the mail servers caught up?" box of the revisions page current.
// A file of its own because the panel's Content-Security-Policy allows no inline script.
(function () {
  "use strict";
  var box = document.getElementById("config-status");
  if (!box || !box.dataset.statusUrl) { return; }
  var headline = box.querySelector("strong");
  function show(status) {
    box.classList.toggle("alert-success", status.caught_up);
    box.classList.toggle("alert-warning", !status.caught_up);
    if (headline) {
      headline.textContent = status.caught_up
        ? "The mail servers are up to date."
        : (status.in_force && status.in_force.rollback_of ? "Rolled back:" : "Changes are waiting:");
    }
    ["changed_at", "applied_at"].forEach(function (name) {
      var field = box.querySelector('[data-field="' + name + '"]');
      if (field) { field.textContent = status[name + "_text"] || status[name] || "never"; }
    });
  }
  function poll() {
    fetch(box.dataset.statusUrl, {credentials: "same-origin", headers: {"Accept": "application/json"}})
      .then(function (response) { return response.ok ? response.json() : null; })
      .then(function (status) { if (status) { show(status); } })
      .catch(function () { /* offline for a moment: try again at the next tick */ });
  }
  window.setInterval(poll, 5000);
})();
