// Shown in the "New Text Message" window after Save: tell the builder which message was saved, then close.
(function () {
  "use strict";
  document.addEventListener("DOMContentLoaded", function () {
    var card = document.getElementById("popup-saved");
    if (!card) { return; }
    if (window.opener && !window.opener.closed) {
      window.opener.postMessage(
        { type: "smsapp:text-message-saved", id: Number(card.getAttribute("data-id")), name: card.getAttribute("data-name") },
        window.location.origin
      );
      setTimeout(function () { window.close(); }, 300);
    }
    document.addEventListener("click", function (event) {
      if (event.target.closest("[data-close-window]")) { window.close(); }
    });
  });
})();
