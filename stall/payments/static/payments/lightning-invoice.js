// A Lightning invoice page: copy the invoice, and ask the server every few seconds whether it was
// paid (the server asks LNbits); once it is, go on to the page after payment. Its words come
// translated from the page (data-copied, data-paid). Without script the
// "I've paid — check" button does the asking.
(function () {
  "use strict";
  var box = document.getElementById("lightning-invoice");
  if (!box) return;
  var status = document.getElementById("lightning-status");
  var copy = document.getElementById("lightning-copy");
  var text = document.getElementById("lightning-bolt11");
  if (copy && navigator.clipboard) {
    copy.hidden = false;
    copy.addEventListener("click", function () {
      navigator.clipboard.writeText(text.value).then(function () { copy.textContent = box.dataset.copied; });
    });
  }
  function ask() {
    fetch(box.dataset.statusUrl, { headers: { Accept: "application/json" }, cache: "no-store" })
      .then(function (response) { return response.json(); })
      .then(function (payment) {
        if (payment.paid) {
          status.textContent = box.dataset.paid;
          window.location.assign(box.dataset.doneUrl);
        } else if (payment.status === "requires_action" || payment.status === "processing" || !payment.status) {
          window.setTimeout(ask, 3000);
        } else {
          window.location.reload(); // expired or canceled: the page says so
        }
      })
      .catch(function () { window.setTimeout(ask, 6000); });
  }
  window.setTimeout(ask, 3000);
})();
