// Uploads a form[data-upload] with XMLHttpRequest so a <progress> bar can follow the bytes.
// Without JavaScript the same form posts normally; this file only adds the progress display.
// The server answers with a redirect (success) or the page with errors; either way the
// response page replaces the current one, so messages and errors show as after a plain post.
(function () {
  "use strict";

  function showResponse(xhr, anchor) {
    var doc = new DOMParser().parseFromString(xhr.responseText, "text/html");
    if (!doc.body || !doc.body.children.length) {
      window.location.reload();
      return;
    }
    document.title = doc.title;
    document.body.replaceWith(document.adoptNode(doc.body));
    if (xhr.status < 400 && xhr.responseURL) {
      // responseURL has no fragment; put back the section the form was in.
      window.history.replaceState(null, "", xhr.responseURL + (anchor ? "#" + anchor : ""));
    }
    var target = anchor && document.getElementById(anchor);
    if (target) target.scrollIntoView();
  }

  function upload(form, submitter) {
    var box = form.querySelector("[data-upload-progress]");
    var bar = box && box.querySelector("progress");
    var status = box && box.querySelector("[data-upload-status]");
    var buttons = form.querySelectorAll("button[type=submit]");
    var section = form.closest("[id]");
    var anchor = section ? section.id : "";
    var xhr = new XMLHttpRequest();
    // getAttribute: a control named "action" (the new product's buttons) shadows form.action.
    xhr.open("POST", form.getAttribute("action") || window.location.href);
    xhr.setRequestHeader("X-Requested-With", "XMLHttpRequest");
    if (box) box.hidden = false;
    // FormData leaves out the button that was pressed; "Publish" and "Save as draft" differ by it.
    var data = new FormData(form);
    if (submitter && submitter.name) data.append(submitter.name, submitter.value);
    buttons.forEach(function (b) { b.disabled = true; });
    xhr.upload.onprogress = function (event) {
      if (!event.lengthComputable || !bar) return;
      var percent = Math.round((event.loaded / event.total) * 100);
      bar.value = percent;
      if (status) status.textContent = percent < 100 ? "Uploading… " + percent + "%" : "Processing…";
    };
    xhr.onload = function () {
      showResponse(xhr, anchor);
    };
    xhr.onerror = function () {
      buttons.forEach(function (b) { b.disabled = false; });
      if (status) status.textContent = "The upload failed. Check your connection and try again.";
    };
    xhr.send(data);
  }

  // Listening on the document keeps working after the page body is replaced by a response.
  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (!(form instanceof HTMLFormElement) || !form.hasAttribute("data-upload")) return;
    if (!window.FormData || !window.DOMParser) return;
    event.preventDefault();
    upload(form, event.submitter);
  });
})();
