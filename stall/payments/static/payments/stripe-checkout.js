// The Stripe payment page: mounts Stripe's Payment Element and confirms the PaymentIntent made
// by the server (or, in "setup" mode, the SetupIntent that saves a card for later charges, as a
// card pledge does). Stripe sends the buyer to the return URL, where the server asks Stripe how it
// went; a card refused at once (before any redirect) is shown here, and the buyer can try another.
// In "next_action" mode the intent (payment or setup) is confirmed already and only the bank's
// check (3-D Secure) is left.
(function () {
  "use strict";
  var form = document.getElementById("stripe-checkout");
  if (!form || typeof window.Stripe !== "function") return;
  var message = document.getElementById("payment-message");
  var button = document.getElementById("payment-submit");
  var stripe = window.Stripe(form.dataset.publishableKey);
  var clientSecret = form.dataset.clientSecret;
  var returnUrl = form.dataset.returnUrl;

  function show(text) {
    message.textContent = text;
    message.hidden = !text;
    button.disabled = false;
  }

  function backToServer(paymentIntentId) {
    window.location.assign(returnUrl + "?payment_intent=" + encodeURIComponent(paymentIntentId));
  }

  if (form.dataset.mode === "next_action") {
    // Confirmed on the server already; only the bank's check (3-D Secure) is left.
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      button.disabled = true;
      stripe.handleNextAction({ clientSecret: clientSecret }).then(function (result) {
        var intent = result.paymentIntent || result.setupIntent;
        if (result.error && !intent) { show(result.error.message); return; }
        backToServer((intent || {}).id || clientSecret.split("_secret_")[0]);
      });
    });
    return;
  }

  var elements = stripe.elements({ clientSecret: clientSecret });
  elements.create("payment").mount("#payment-element");
  form.addEventListener("submit", function (event) {
    event.preventDefault();
    show("");
    button.disabled = true;
    var confirm = form.dataset.mode === "setup" ? stripe.confirmSetup : stripe.confirmPayment;
    confirm.call(stripe, { elements: elements, confirmParams: { return_url: returnUrl } }).then(function (result) {
      // Reached only when Stripe did not redirect: a refused card or an invalid form.
      if (result.error) show(result.error.message);
    });
  });
})();
