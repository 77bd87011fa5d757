// Password generator and strength meter for every new-password field of the panel.
//
// The checks repeat the server's own (mailadmin/passwords.py check_password_policy for mailbox
// passwords, accounts.check_panel_password for panel accounts), with the same messages and the
// server's data from /password-rules.json, so a refusal shows while typing. The server still
// checks every password it receives. No inline script: the panel's CSP allows only files.
(function () {
  "use strict";
  var script = document.currentScript;
  var fields = document.querySelectorAll('input[autocomplete="new-password"]');
  if (!fields.length || !window.fetch || !script) { return; }

  var ALPHABET = "abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789-_.!+";
  var GENERATED_LENGTH = 20;

  function codePoints(text) { return Array.from(text); }

  function stripDecoration(text, decoration) {
    var chars = codePoints(text);
    var start = 0;
    var end = chars.length;
    while (start < end && decoration.indexOf(chars[start]) >= 0) { start += 1; }
    while (end > start && decoration.indexOf(chars[end - 1]) >= 0) { end -= 1; }
    return chars.slice(start, end).join("");
  }

  function translate(text, table) {
    return codePoints(text).map(function (ch) { return table[ch] || ch; }).join("");
  }

  function commonCore(password, rules, common) {
    var folded = password.toLowerCase();
    var stripped = stripDecoration(folded, rules.decoration);
    var candidates = [folded, stripped, translate(folded, rules.lookalikes),
                      translate(stripped, rules.lookalikes)];
    for (var i = 0; i < candidates.length; i += 1) {
      if (candidates[i] && common.has(candidates[i])) { return candidates[i]; }
    }
    if (!stripped) {
      var found = null;
      common.forEach(function (entry) {
        if (!found && codePoints(entry).length >= 4 &&
            (folded.indexOf(entry) === 0 || folded.slice(-entry.length) === entry)) {
          found = entry;
        }
      });
      return found;
    }
    return null;
  }

  function identityParts(identity) {
    var parts = [];
    if (identity.address) {
      parts.push([identity.address, "the mail address"]);
      var at = identity.address.lastIndexOf("@");
      var local = at >= 0 ? identity.address.slice(0, at) : identity.address;
      var domain = at >= 0 ? identity.address.slice(at + 1) : "";
      if (local) { parts.push([local, "the name before '@' in the mail address"]); }
      if (domain) { parts.push([domain, "the domain"]); }
    }
    if (identity.username) { parts.push([identity.username, "your user name"]); }
    return parts.filter(function (p) { return p[0]; })
      .map(function (p) { return [p[0].toLowerCase(), p[1]]; });
  }

  // The refusal the server would give, or null.
  function mailboxRefusal(password, rules, common, identity) {
    var length = codePoints(password).length;
    if (length > rules.max_length) {
      return "The password may have at most " + rules.max_length + " characters; this one has " + length + ".";
    }
    var refused = new RegExp("[" + rules.refused_categories.map(function (c) {
      return "\\p{" + c + "}"; }).join("") + "]", "u");
    var bad = password.match(refused);
    if (bad) {
      var hex = bad[0].codePointAt(0).toString(16).toUpperCase();
      while (hex.length < 4) { hex = "0" + hex; }
      return "The password contains an invisible or control character (U+" + hex + "); use letters, digits, spaces and punctuation.";
    }
    if (length < rules.min_length) {
      return "The password must have at least " + rules.min_length + " characters; this one has " + length + ".";
    }
    var folded = password.toLowerCase();
    var parts = identityParts(identity);
    for (var i = 0; i < parts.length; i += 1) {
      var part = parts[i][0];
      if (folded === part || (codePoints(part).length >= rules.min_contained && folded.indexOf(part) >= 0)) {
        return "The password may not contain " + parts[i][1] + ".";
      }
    }
    if (new Set(codePoints(folded)).size <= 2) {
      return "The password uses only one or two different characters; choose one that is harder to guess.";
    }
    var core = commonCore(password, rules, common);
    if (core !== null) {
      return core === folded
        ? "This is one of the most common passwords, which attackers try first; choose another."
        : "This password is a very common password with small changes, which attackers try first; choose another.";
    }
    return null;
  }

  function panelRefusal(password, rules, identity) {
    var length = codePoints(password).length;
    if (length < rules.min_length) {
      return "The password must be at least " + rules.min_length + " characters long.";
    }
    if (length > rules.max_length) { return "The password is too long."; }
    if (/[\u0000-\u001f\u007f]/.test(password)) {
      return "The password may not contain control characters.";
    }
    if (identity.username && password.toLowerCase().indexOf(identity.username.toLowerCase()) >= 0) {
      return "The password may not contain the user name.";
    }
    return null;
  }

  // 0-4: how hard the password is to guess once it passes the rules (length and variety).
  function strength(password) {
    var length = codePoints(password).length;
    var classes = [/[a-z]/, /[A-Z]/, /[0-9]/, /[^A-Za-z0-9]/].filter(function (re) {
      return re.test(password); }).length;
    var bits = length * Math.log2(Math.max(10, [0, 26, 52, 62, 90][classes]));
    if (bits >= 100) { return 4; }
    if (bits >= 75) { return 3; }
    if (bits >= 55) { return 2; }
    return 1;
  }

  var WORDS = ["", "weak", "fair", "good", "strong"];

  function randomPassword() {
    var out = "";
    var buffer = new Uint8Array(1);
    var limit = 256 - (256 % ALPHABET.length);  // rejection sampling keeps every char equally likely
    while (out.length < GENERATED_LENGTH) {
      window.crypto.getRandomValues(buffer);
      if (buffer[0] < limit) { out += ALPHABET[buffer[0] % ALPHABET.length]; }
    }
    return out;
  }

  function identityOf(field) {
    var form = field.form;
    var identity = { address: field.getAttribute("data-password-identity") || "", username: "" };
    if (!form) { return identity; }
    var local = form.elements.local_part;
    var domain = form.elements.domain;
    if (!identity.address && local && domain && local.value && domain.value) {
      identity.address = local.value.trim() + "@" + domain.value;
    }
    var username = form.elements.username;
    if (username && username.value) { identity.username = username.value.trim(); }
    if (!identity.username) { identity.username = field.getAttribute("data-password-username") || ""; }
    return identity;
  }

  function attach(field, rulesData, common, index) {
    var kind = field.getAttribute("data-password-rules") === "panel" ? "panel" : "mailbox";
    var rules = rulesData[kind];
    var box = document.createElement("div");
    box.className = "password-helper mt-1";
    var button = document.createElement("button");
    button.type = "button";
    button.className = "btn btn-sm btn-outline-secondary me-2";
    button.textContent = "Suggest a strong password";
    var meter = document.createElement("meter");
    meter.min = 0; meter.max = 4; meter.low = 2; meter.high = 3; meter.optimum = 4; meter.value = 0;
    meter.className = "password-meter align-middle me-2";
    meter.id = "password-meter-" + index;
    var verdict = document.createElement("span");
    verdict.className = "small password-verdict";
    verdict.id = "password-verdict-" + index;
    verdict.setAttribute("aria-live", "polite");
    meter.setAttribute("aria-labelledby", verdict.id);
    box.appendChild(button);
    box.appendChild(meter);
    box.appendChild(verdict);
    field.insertAdjacentElement("afterend", box);
    var described = (field.getAttribute("aria-describedby") || "").trim();
    field.setAttribute("aria-describedby", (described ? described + " " : "") + verdict.id);

    function update() {
      var password = field.value;
      if (!password) {
        meter.value = 0; verdict.textContent = ""; field.removeAttribute("data-password-state");
        return;
      }
      var identity = identityOf(field);
      var refusal = kind === "panel" ? panelRefusal(password, rules, identity)
        : mailboxRefusal(password, rules, common, identity);
      if (refusal) {
        meter.value = 0;
        verdict.textContent = "Not accepted: " + refusal;
        verdict.className = "small password-verdict text-danger";
        field.setAttribute("data-password-state", "refused");
        return;
      }
      var level = strength(password);
      meter.value = level;
      verdict.textContent = "Accepted; strength: " + WORDS[level] + ".";
      verdict.className = "small password-verdict " + (level >= 3 ? "text-success" : "text-body-secondary");
      field.setAttribute("data-password-state", WORDS[level]);
    }

    field.addEventListener("input", update);
    if (field.form) { field.form.addEventListener("input", function (e) { if (e.target !== field) { update(); } }); }
    button.addEventListener("click", function () {
      var password = randomPassword();
      for (var tries = 0; tries < 20; tries += 1) {
        var identity = identityOf(field);
        var refused = kind === "panel" ? panelRefusal(password, rules, identity)
          : mailboxRefusal(password, rules, common, identity);
        if (!refused) { break; }
        password = randomPassword();
      }
      var form = field.form;
      var targets = form ? form.querySelectorAll('input[autocomplete="new-password"]') : [field];
      Array.prototype.forEach.call(targets, function (input) { input.value = password; });
      // Shown in clear so it can be copied or written down before the form is sent.
      field.type = "text";
      update();
      verdict.textContent += " Copy it now: it is shown only here.";
      field.focus();
      field.select();
    });
    update();
  }

  fetch(script.getAttribute("data-rules"), { credentials: "same-origin" })
    .then(function (response) { return response.json(); })
    .then(function (rules) {
      var common = new Set(rules.mailbox.common);
      var index = 0;
      Array.prototype.forEach.call(fields, function (field) {
        // The meter goes on the first new-password field of a form; "again" fields follow it.
        var first = field.form ? field.form.querySelector('input[autocomplete="new-password"]') : field;
        if (first === field) { attach(field, rules, common, index); index += 1; }
      });
    })
    .catch(function () { /* without the rules the server's refusal still explains */ });
})();
