// ai-review dashboard: the only script. Pages work without it; with it,
// elements with data-live subscribe to a server-sent event stream:
//   event "html" {id, html}  replaces the element with that id
//   event "log"  text         appends a line to #log
//   event "reload"            reloads the page (a review finished)
"use strict";
(function () {
  function subscribe(url) {
    var es = new EventSource(url);
    es.addEventListener("html", function (e) {
      var m = JSON.parse(e.data);
      var el = document.getElementById(m.id);
      if (el) { el.outerHTML = m.html; }
    });
    es.addEventListener("log", function (e) {
      var log = document.getElementById("log");
      if (!log) { return; }
      var atEnd = log.scrollTop + log.clientHeight >= log.scrollHeight - 4;
      var empty = document.getElementById("log-empty");
      if (empty) { empty.remove(); }
      log.appendChild(document.createTextNode(e.data + "\n"));
      if (atEnd) { log.scrollTop = log.scrollHeight; }
    });
    es.addEventListener("reload", function () {
      es.close();
      window.location.reload();
    });
  }
  // Web Push: the button carries the server's VAPID public key; the
  // subscription goes to the API with the page's CSRF token.
  function base64url(s) {
    var raw = atob((s + "===".slice((s.length + 3) % 4)).replace(/-/g, "+").replace(/_/g, "/"));
    var out = new Uint8Array(raw.length);
    for (var i = 0; i < raw.length; i++) { out[i] = raw.charCodeAt(i); }
    return out;
  }
  function pushButton(btn) {
    var status = document.getElementById("push-status");
    function say(t) { if (status) { status.textContent = t; } }
    if (!("serviceWorker" in navigator) || !("PushManager" in window)) {
      btn.disabled = true;
      say("This browser does not support push notifications (or the page is not served over HTTPS).");
      return;
    }
    btn.addEventListener("click", function () {
      var field = document.querySelector("#push input[name=_csrf]");
      Notification.requestPermission().then(function (p) {
        if (p !== "granted") { throw new Error("notifications are blocked for this site in the browser"); }
        return navigator.serviceWorker.register("/sw.js");
      }).then(function () {
        return navigator.serviceWorker.ready;
      }).then(function (reg) {
        return reg.pushManager.subscribe({ userVisibleOnly: true, applicationServerKey: base64url(btn.getAttribute("data-key")) });
      }).then(function (sub) {
        return fetch("/api/notifications/push/subscriptions", {
          method: "POST",
          credentials: "same-origin",
          headers: { "content-type": "application/json", "x-csrf-token": field ? field.value : "" },
          body: JSON.stringify(sub)
        });
      }).then(function (r) {
        if (!r.ok) {
          return r.json().then(function (j) { throw new Error((j.error && j.error.detail) || ("HTTP " + r.status)); });
        }
        say("This browser is subscribed.");
        window.location.reload();
      }).catch(function (e) {
        say("Could not turn on notifications: " + e.message);
      });
    });
  }
  document.addEventListener("DOMContentLoaded", function () {
    var els = document.querySelectorAll("[data-live]");
    for (var i = 0; i < els.length; i++) { subscribe(els[i].getAttribute("data-live")); }
    var push = document.getElementById("push-subscribe");
    if (push) { pushButton(push); }
  });
})();
