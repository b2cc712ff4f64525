/* Stall's buy button. A creator's page links to a Stall checkout with <a data-stall-overlay>; without
   this script the link is a plain link and works as one. With it, a click opens the checkout in an
   overlay on the creator's page. It asks for nothing but the checkout itself, and only opens links to
   the Stall that served it, so it can never be made to frame another site. */
(function () {
  "use strict";
  var me = document.currentScript;
  if (!me || !window.URL) return;
  var origin = new URL(me.src, location.href).origin;
  var key = "stallEmbed " + origin;
  if (window[key]) return; // the snippet pasted twice: one listener is enough
  window[key] = true;
  var overlay = null;
  var opener = null;
  // The overlay's own words in Stall's languages, written in by the server from its catalogs.
  var WORDS = /*stall:words*/{"en": {"checkout": "Checkout", "away": "Open in a new tab", "close": "Close"}}/*stall:end*/;
  // The visitor's first language Stall speaks, as the checkout in the frame chooses it ("pt-PT"
  // finds "pt-br" by its first part), else English.
  var words = (function () {
    var asked = [].concat(navigator.languages || [], navigator.language || []);
    for (var i = 0; i < asked.length; i++) {
      var tag = String(asked[i]).toLowerCase();
      if (WORDS[tag]) return WORDS[tag];
      for (var code in WORDS) if (code.split("-")[0] === tag.split("-")[0]) return WORDS[code];
    }
    return WORDS.en;
  })();

  function el(tag, css, attrs) {
    var node = document.createElement(tag);
    node.style.cssText = css;
    for (var name in attrs || {}) node.setAttribute(name, attrs[name]);
    return node;
  }

  function close() {
    if (!overlay) return;
    overlay.parentNode.removeChild(overlay);
    overlay = null;
    document.documentElement.style.overflow = "";
    if (opener) opener.focus();
  }

  function open(link) {
    close();
    opener = link;
    var label = (link.textContent || "").trim() || words.checkout;
    overlay = el("div",
      "position:fixed;inset:0;z-index:2147483647;background:rgba(0,0,0,.55);display:flex;" +
      "align-items:center;justify-content:center;padding:12px;box-sizing:border-box",
      {role: "dialog", "aria-modal": "true", "aria-label": label, "data-stall-overlay-open": ""});
    var box = el("div",
      "position:relative;display:flex;flex-direction:column;width:100%;max-width:560px;height:100%;" +
      "max-height:780px;background:#fff;border-radius:10px;overflow:hidden;box-shadow:0 10px 40px rgba(0,0,0,.35)");
    var bar = el("div",
      "display:flex;justify-content:space-between;align-items:center;gap:8px;padding:6px 8px 6px 14px;" +
      "font:14px/1.3 system-ui,sans-serif;border-bottom:1px solid #e5e5e5;background:#fafafa");
    // If this site is not among the store's embed sites, the frame stays empty: this link still works.
    var away = el("a", "color:#333", {href: link.href, target: "_blank", rel: "noopener"});
    away.textContent = words.away;
    var shut = el("button",
      "font:20px/1 system-ui,sans-serif;border:0;background:none;cursor:pointer;padding:4px 8px;color:#333",
      {type: "button", "aria-label": words.close});
    shut.textContent = "\u00d7";
    shut.onclick = close;
    var frame = el("iframe", "border:0;width:100%;flex:1", {src: link.href, title: label, allow: "payment"});
    bar.appendChild(away);
    bar.appendChild(shut);
    box.appendChild(bar);
    box.appendChild(frame);
    overlay.appendChild(box);
    overlay.addEventListener("click", function (event) { if (event.target === overlay) close(); });
    document.body.appendChild(overlay);
    document.documentElement.style.overflow = "hidden";
    shut.focus();
  }

  document.addEventListener("keydown", function (event) { if (event.key === "Escape") close(); });
  document.addEventListener("click", function (event) {
    if (event.defaultPrevented || event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
    var link = event.target.closest ? event.target.closest("a[data-stall-overlay]") : null;
    if (!link || link.origin !== origin) return;
    event.preventDefault();
    open(link);
  });
})();
