// The "Copy link" button of the first steps: puts the store's link on the clipboard, then posts
// the form so the step is marked done. Without JavaScript the button stays hidden and the link
// can be selected by hand; "I've shared it" posts the same form.
(function () {
  "use strict";

  function copied(form) {
    form.querySelector("input[name=copied]").value = "1";
    form.submit();
  }

  function copyByHand(input) {
    // Browsers that refuse the clipboard API (no permission, no https) still copy a selection.
    input.select();
    try { return document.execCommand("copy"); } catch (e) { return false; }
  }

  document.querySelectorAll("[data-copy]").forEach(function (button) {
    var input = document.getElementById(button.getAttribute("data-copy"));
    var form = button.closest("form");
    if (!input || !form) return;
    button.hidden = false;
    button.addEventListener("click", function () {
      if (navigator.clipboard && window.isSecureContext) {
        navigator.clipboard.writeText(input.value).then(function () { copied(form); }, function () {
          if (copyByHand(input)) copied(form);
        });
      } else if (copyByHand(input)) {
        copied(form);
      }
    });
  });
})();
