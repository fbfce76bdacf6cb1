// Port of providers/segments.py for the editor's live counter. Keep the two in step: tests/texts/test_segments.py
// evaluates SmsCounter.count() in Chromium on the same cases as the Python function.
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

  function render(output, body) {
    var r = count(body);
    output.textContent = r.characters + " characters · " + r.segments + " segment" + (r.segments === 1 ? "" : "s") +
      " · " + r.encoding + " · " + r.remaining + " left in this segment" +
      (r.too_long ? " · too long: at most " + MAX_CHARACTERS + " characters" : "");
    output.classList.toggle("error", r.too_long);
  }

  function bind(root) {
    (root || document).querySelectorAll("[data-sms-counter]").forEach(function (output) {
      var input = document.getElementById(output.getAttribute("data-sms-counter"));
      if (!input || input.dataset.smsCounterBound) { return; }
      input.dataset.smsCounterBound = "1";
      input.addEventListener("input", function () { render(output, input.value); });
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

  window.SmsCounter = { count: count, bind: bind };
  document.addEventListener("DOMContentLoaded", function () { bind(document); });
})();
