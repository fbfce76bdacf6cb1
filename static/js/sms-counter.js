// Port of providers/segments.py for the editor's live counter. Keep the two in step: tests/texts/test_segments.py
// evaluates SmsCounter.count() in Chromium on the same cases as the Python function.
// The counter counts the body as a sample recipient would get it (SmsCounter.asSent: texts/personalise.py's
// rendering with that contact's values, and texts/services/links.py's links at the length of a short link), not the token
// syntax: {{first_name|there}} costs a name, not its braces. tests/texts/test_editor_sample.py checks both agree.
(function () {
  "use strict";
  var BASIC = "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?" +
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà";
  var EXTENSION = "\f^{}\\[~]|€";
  var MAX_CHARACTERS = 1600;

  function count(body) {
    var chars = Array.from(body); // code points, as Python's str
    var gsm = chars.every(function (ch) { return BASIC.indexOf(ch) >= 0 || EXTENSION.indexOf(ch) >= 0; });
    var costs = chars.map(function (ch) {
      if (gsm) { return EXTENSION.indexOf(ch) >= 0 ? 2 : 1; }
      return ch.codePointAt(0) > 0xffff ? 2 : 1;
    });
    var units = costs.reduce(function (a, b) { return a + b; }, 0);
    var single = gsm ? 160 : 70;
    var part = gsm ? 153 : 67;
    var result = { encoding: gsm ? "GSM-7" : "UCS-2", characters: chars.length, units: units };
    if (units === 0) {
      result.segments = 0; result.per_segment = single; result.remaining = single;
    } else if (units <= single) {
      result.segments = 1; result.per_segment = single; result.remaining = single - units;
    } else {
      var parts = 1, used = 0;
      costs.forEach(function (c) { if (used + c > part) { parts += 1; used = 0; } used += c; });
      result.segments = parts; result.per_segment = part; result.remaining = part - used;
    }
    result.too_long = chars.length > MAX_CHARACTERS;
    return result;
  }

  var TOKEN = /\{\{\s*([^{}|]*?)\s*(?:\|([^{}]*?))?\s*\}\}|\{contactfield=([^{}|]*?)(?:\|([^{}]*))?\}/g;
  var NAME = /^(custom\.)?[A-Za-z_][A-Za-z0-9_]*$/;
  var FIELDS = ["first_name", "last_name", "email", "mobile", "country", "timezone", "preferred_language"];
  var ALIASES = { firstname: "first_name", lastname: "last_name", phone: "mobile", mobile_number: "mobile",
    language: "preferred_language" };
  var URL = /https?:\/\/[^\s<>"']+/gi;
  var TRAILING = ".,;:!?'\"\u00bb\u201d\u2019";
  var CLOSERS = { ")": "(", "]": "[", "}": "{" };

  function value(sample, name) {
    if (!NAME.test(name)) { return null; }
    var key = name.indexOf("custom.") === 0 ? name : (ALIASES[name.toLowerCase()] ||
      (FIELDS.indexOf(name.toLowerCase()) >= 0 ? name.toLowerCase() : "custom." + name));
    var found = key.indexOf("custom.") === 0 ? (sample.custom || {})[key.slice(7)] : sample[key];
    return found === undefined || found === null ? "" : String(found);
  }

  function personalise(body, sample) {
    return body.replace(TOKEN, function (match, name, fallback, mName, mFallback) {
      var isMautic = name === undefined;
      var n = (isMautic ? mName || "" : name).trim();
      var f = ((isMautic ? mFallback : fallback) || "").trim();
      var v = value(sample || {}, n);
      if (v === null) { return match; }
      return v || f;
    });
  }

  function count_(s, ch) { return s.split(ch).length - 1; }

  function trim(url) {
    while (url) {
      var last = url[url.length - 1];
      if (TRAILING.indexOf(last) >= 0 || (CLOSERS[last] && count_(url, CLOSERS[last]) < count_(url, last))) {
        url = url.slice(0, -1); continue;
      }
      break;
    }
    return url;
  }

  function shortenLinks(body, prefix, codeLength) {
    var standIn = prefix + new Array(codeLength + 1).join("x");
    return body.replace(URL, function (match) {
      var url = trim(match);
      if (url.length <= "https://".length || url.indexOf(prefix) === 0) { return match; }
      return standIn + match.slice(url.length);
    });
  }

  // The body as the sample recipient gets it; ``sample`` is the page's sms-sample JSON.
  function asSent(body, sample, tracked) {
    var rendered = personalise(body, sample || {});
    return tracked && sample ? shortenLinks(rendered, sample.short_link_prefix, sample.code_length) : rendered;
  }

  // texts/footer.py's with_footer: the opt-out footer on a line of its own, unless the body already ends with it.
  function withFooter(body, footer) {
    if (!footer || body.replace(/\s+$/, "").slice(-footer.length) === footer) { return body; }
    return body ? body + "\n" + footer : footer;
  }

  function isMarketing(sample) {
    var category = document.getElementById("id_category");
    return category ? category.value === "marketing" : !!(sample && sample.marketing);
  }

  // What the counter counts: the body as sent, with the footer a marketing text's first message carries.
  function asCounted(body, sample, isTracked, marketing) {
    var sent = sample ? asSent(body, sample, isTracked) : body;
    return marketing && sample ? withFooter(sent, sample.opt_out_footer || "") : sent;
  }

  function sampleOf(output) {
    var source = document.getElementById(output.getAttribute("data-sms-sample") || "");
    return source ? JSON.parse(source.textContent) : null;
  }

  function tracked(sample) {
    if (!sample) { return false; }
    var track = document.getElementById("id_track_links");
    var category = document.getElementById("id_category");
    var choice = track ? track.value : "unknown";
    if (choice === "true") { return true; }
    if (choice === "false") { return false; }
    return category ? category.value === "marketing" : sample.marketing;
  }

  function render(output, body) {
    var sample = sampleOf(output);
    var isTracked = tracked(sample);
    var marketing = isMarketing(sample);
    var footed = marketing && sample && sample.opt_out_footer;
    var r = count(asCounted(body, sample, isTracked, marketing));
    var channel = document.getElementById("id_channel");
    var chat = channel && channel.value && channel.value !== "sms";
    // WhatsApp and Messenger are not split into segments nor billed by them (texts/channels.py): only the length.
    var measure = chat ? r.characters + " characters · " + channel.options[channel.selectedIndex].text +
      ": no segments, up to " + MAX_CHARACTERS + " characters" :
      r.characters + " characters · " + r.segments + " segment" + (r.segments === 1 ? "" : "s") +
      " · " + r.encoding + " · " + r.remaining + " left in this segment";
    output.textContent = measure +
      (r.too_long ? " · too long: at most " + MAX_CHARACTERS + " characters" : "") +
      (sample && sample.name ? " · as sent to " + sample.name : "") +
      (footed ? " · with the opt-out footer" : "") +
      (isTracked && body.search(URL) >= 0 ? " · links as " + (sample.short_link_prefix.length + sample.code_length) +
        "-character short links" : "");
    output.classList.toggle("error", r.too_long);
  }

  function bind(root) {
    (root || document).querySelectorAll("[data-sms-counter]").forEach(function (output) {
      var input = document.getElementById(output.getAttribute("data-sms-counter"));
      if (!input || input.dataset.smsCounterBound) { return; }
      input.dataset.smsCounterBound = "1";
      input.addEventListener("input", function () { render(output, input.value); });
      ["id_track_links", "id_category", "id_channel"].forEach(function (id) {
        var control = document.getElementById(id);
        if (control) { control.addEventListener("change", function () { render(output, input.value); }); }
      });
      render(output, input.value);
    });
    (root || document).querySelectorAll("[data-insert-token]").forEach(function (button) {
      if (button.dataset.bound) { return; }
      button.dataset.bound = "1";
      button.addEventListener("click", function () {
        var input = document.getElementById(button.getAttribute("data-target"));
        if (!input) { return; }
        var token = button.getAttribute("data-insert-token");
        var start = input.selectionStart || input.value.length, end = input.selectionEnd || start;
        input.value = input.value.slice(0, start) + token + input.value.slice(end);
        input.focus();
        input.setSelectionRange(start + token.length, start + token.length);
        input.dispatchEvent(new Event("input", { bubbles: true }));
      });
    });
  }

  window.SmsCounter = { count: count, bind: bind, asSent: asSent, withFooter: withFooter, asCounted: asCounted };
  document.addEventListener("DOMContentLoaded", function () { bind(document); });
})();
