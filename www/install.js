// Register the service worker (www/sw.js): the page installs as an app and, opened with no
// server in reach, shows an offline page. Where service workers are missing (or refused: a
// self-signed certificate, private modes) the page works as before, only without those two.

export function registerServiceWorker() {
  if (!("serviceWorker" in navigator)) return;
  navigator.serviceWorker.register("/sw.js", { scope: "/", updateViaCache: "none" }).catch((err) => {
    console.info("walkie: no service worker:", err && err.message ? err.message : err);
  });
}
