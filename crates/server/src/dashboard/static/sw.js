// ai-review service worker: shows the Web Push notifications the server
// sends ({title, body, url, tag}) and opens the review when one is clicked.
"use strict";
self.addEventListener("push", function (e) {
  var d = {};
  try {
    d = e.data ? e.data.json() : {};
  } catch (_) {
    d = { body: e.data ? e.data.text() : "" };
  }
  e.waitUntil(self.registration.showNotification(d.title || "ai-review", {
    body: d.body || "",
    tag: d.tag,
    data: { url: d.url || "/" }
  }));
});
self.addEventListener("notificationclick", function (e) {
  e.notification.close();
  var url = (e.notification.data && e.notification.data.url) || "/";
  e.waitUntil(self.clients.openWindow(url));
});
