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
  document.addEventListener("DOMContentLoaded", function () {
    var els = document.querySelectorAll("[data-live]");
    for (var i = 0; i < els.length; i++) { subscribe(els[i].getAttribute("data-live")); }
  });
})();
