// Follows the "is it live?" notice (templates/_live_status.html) until the mail servers have
// the change; a file of its own because the Content-Security-Policy allows no inline script.
(function () {
  "use strict";
  var box = document.getElementById("live-status");
  if (!box || !box.dataset.liveUrl || box.dataset.state === "live") { return; }
  var text = box.querySelector("[data-live-message]");
  var classes = {live: "alert-success", waiting: "alert-info", delayed: "alert-warning"};
  var timer = null;
  var polls = 0;
  function show(notice) {
    if (!notice || notice.state === "none") { return; }
    Object.keys(classes).forEach(function (state) {
      box.classList.toggle(classes[state], state === notice.state);
    });
    box.dataset.state = notice.state;
    if (text && notice.message) { text.textContent = notice.message; }
    if (notice.state === "live" && timer !== null) { window.clearInterval(timer); }
  }
  function poll() {
    polls += 1;
    if (polls > 720 && timer !== null) { window.clearInterval(timer); }  // an hour is enough
    fetch(box.dataset.liveUrl, {credentials: "same-origin", headers: {"Accept": "application/json"}})
      .then(function (response) { return response.ok ? response.json() : null; })
      .then(show)
      .catch(function () { /* offline for a moment: try again at the next tick */ });
  }
  timer = window.setInterval(poll, 2000);
})();
