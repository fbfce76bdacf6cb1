// The campaign builder's own behaviour: the event panel (a modal <dialog>: Escape closes it and focus returns to
// the button that opened it), the "New Text Message" window, and confirmation before removing an event.
(function () {
  "use strict";
  var opener = null;

  function panel() { return document.getElementById("event-panel"); }

  function focusFirst(container) {
    var el = container.querySelector("[aria-invalid], .field-error input, .field-error select, input:not([type=hidden]), select, textarea, a.kind-option, button:not([data-panel-close])");
    if (el) { el.focus(); }
  }

  document.addEventListener("click", function (event) {
    var open = event.target.closest("[data-panel-open]");
    if (open) { opener = open; }
    if (event.target.closest("[data-panel-close]")) {
      var dialog = panel();
      if (dialog && dialog.open) { dialog.close(); }
    }
    var newText = event.target.closest("[data-new-text-message]");
    if (newText) {
      window.open(newText.getAttribute("data-new-text-message"), "new-text-message", "width=760,height=820");
    }
  });

  document.addEventListener("submit", function (event) {
    var message = event.target.getAttribute("data-confirm");
    if (message && !window.confirm(message)) { event.preventDefault(); }
  });

  document.addEventListener("htmx:afterSwap", function (event) {
    var dialog = panel();
    if (!dialog || event.detail.target.id !== "panel-body") { return; }
    if (!dialog.open) { dialog.showModal(); }
    focusFirst(dialog);
  });

  document.addEventListener("DOMContentLoaded", function () {
    var dialog = panel();
    if (dialog) {
      dialog.addEventListener("close", function () {
        document.getElementById("panel-body").innerHTML = "";
        if (opener && document.body.contains(opener)) { opener.focus(); }
      });
    }
    // After a save the page reloads on the builder with #event-N: bring the saved event into view and focus.
    if (location.hash.indexOf("#event-") === 0) {
      var saved = document.getElementById(location.hash.slice(1));
      if (saved) { saved.focus(); saved.scrollIntoView({ block: "center" }); }
    }
  });

  // The text message window tells us what it saved: select it in the action form (adding the option if new).
  window.addEventListener("message", function (event) {
    if (event.origin !== window.location.origin) { return; }
    var data = event.data || {};
    if (data.type !== "smsapp:text-message-saved") { return; }
    var select = document.querySelector("[data-text-message-select]");
    if (!select) { return; }
    var value = String(data.id);
    var option = Array.prototype.find.call(select.options, function (o) { return o.value === value; });
    if (!option) {
      option = new Option(data.name, value);
      select.add(option);
    }
    select.value = value;
    select.dispatchEvent(new Event("change", { bubbles: true }));
    select.focus();
  });
})();
