// A card kept for a membership's renewals: mounts Stripe's Payment Element for the SetupIntent the
// server made and confirms it. Stripe sends the reader to the return URL (with ?setup_intent=…),
// where the server keeps the card; a card refused at once is shown here, to try another.
(function () {
  "use strict";
  var form = document.getElementById("stripe-setup");
  if (!form || typeof window.Stripe !== "function") return;
  var message = document.getElementById("payment-message");
  var button = document.getElementById("payment-submit");
  var stripe = window.Stripe(form.dataset.publishableKey);
  var elements = stripe.elements({ clientSecret: form.dataset.clientSecret });
  elements.create("payment").mount("#payment-element");
  form.addEventListener("submit", function (event) {
    event.preventDefault();
    message.hidden = true;
    button.disabled = true;
    stripe.confirmSetup({ elements: elements, confirmParams: { return_url: form.dataset.returnUrl } }).then(function (result) {
      // Reached only when Stripe did not redirect: a refused card or an invalid form.
      if (result.error) {
        message.textContent = result.error.message;
        message.hidden = false;
        button.disabled = false;
      }
    });
  });
})();
