// smsapp's own small behaviours. No framework: htmx (shipped by django-htmx) does the swapping.
(function () {
  "use strict";
  document.addEventListener("click", function (event) {
    var toggle = event.target.closest("[data-nav-toggle]");
    if (toggle) {
      var open = document.body.classList.toggle("nav-open");
      toggle.setAttribute("aria-expanded", open ? "true" : "false");
      return;
    }
    var copy = event.target.closest("[data-copy]");
    if (copy) {
      var source = document.getElementById(copy.getAttribute("data-copy"));
      var text = source ? (source.value || source.textContent) : "";
      var done = function () { copy.textContent = "Copied"; setTimeout(function () { copy.textContent = "Copy"; }, 1500); };
      if (navigator.clipboard && window.isSecureContext) {
        navigator.clipboard.writeText(text).then(done);
      } else if (source && source.select) {
        source.select(); document.execCommand("copy"); done();
      }
    }
  });
  // A confirmation the server rendered open (a broadcast about to go) becomes modal: centred, the page behind it
  // inert until the marketer answers. Without JavaScript it stays an open dialog in the page.
  function modal(root) {
    (root || document).querySelectorAll("dialog.confirm[open]").forEach(function (dialog) {
      if (dialog.dataset.modal || !dialog.showModal) { return; }
      dialog.dataset.modal = "1";
      dialog.close();
      dialog.showModal();
    });
  }
  document.addEventListener("DOMContentLoaded", function () { modal(document); });
  document.addEventListener("htmx:afterSettle", function () { modal(document); });
  // A destructive form asks first (data-confirm-delete holds the question).
  document.addEventListener("submit", function (event) {
    var question = event.target.getAttribute && event.target.getAttribute("data-confirm-delete");
    if (question && !window.confirm(question)) { event.preventDefault(); }
  });
})();
