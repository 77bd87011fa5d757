// Saves the browser's time zone once for a person who has not chosen one, so the panel shows
// times in it from the next page on. A zone chosen by hand is never replaced (the server
// keeps it: the form says "automatic").
(function () {
  "use strict";
  var form = document.querySelector("form[data-time-zone-auto]");
  if (!form || !window.fetch || !window.Intl) { return; }
  var zone = Intl.DateTimeFormat().resolvedOptions().timeZone;
  if (!zone) { return; }
  form.elements.time_zone.value = zone;
  fetch(form.action, { method: "POST", body: new FormData(form), credentials: "same-origin" })
    .catch(function () { /* stays UTC; the person can choose a zone on the page */ });
})();
