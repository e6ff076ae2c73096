// The service worker: makes walkie installable as an app and, when the server cannot be
// reached, shows a clear offline page instead of the browser's error page.
//
// Served at /sw.js (signaling/static.py) so that its scope is the whole site. What it does:
// - a page navigation (`/`, `/r/<room>`) always goes to the network; only when the network
//   fails does it answer with the cached offline page (www/offline.html), which tries again
//   on its own and reloads the room once the server answers;
// - the offline page's own files (OFFLINE_SHELL) are cached at install, refreshed after every
//   navigation that reached the server, and served network first, the cache only when the
//   network fails;
// - nothing else is touched: the room page's modules, /ws, /healthz and any other request go
//   to the network as if there were no service worker, and are never cached. A room page
//   needs its server to do anything, so a cached room page would only pretend; and never
//   serving the modules from a cache means a new version of the page is never mixed with an
//   old one.
// Updates: the page registers with updateViaCache "none", so the browser fetches this file on
// every navigation; a changed file installs, takes over at once (skipWaiting, claim) and drops
// the caches of other versions. Change VERSION when OFFLINE_SHELL changes.

const VERSION = 1;
const CACHE = `walkie-offline-v${VERSION}`;
const OFFLINE_PAGE = "/static/offline.html";
const OFFLINE_SHELL = [
  OFFLINE_PAGE,
  "/static/offline.js",
  "/static/style.css",
  "/static/icon.svg",
  "/static/manifest.webmanifest",
];
const PAGE_PATH = /^\/(r\/[^/]+\/?)?$/;

/** Fetch the shell again (a conditional request: 304 when unchanged) into the cache.
 * After a navigation (`install` false) only a cache that still exists is refreshed: a newer
 * version's `activate` deletes this one's, and an old worker finishing a refresh must not
 * bring it back (the offline page would then be found in two versions). */
async function refreshShell(install = false) {
  if (!install && !(await caches.has(CACHE))) return;
  const cache = await caches.open(CACHE);
  await Promise.all(
    OFFLINE_SHELL.map(async (path) => {
      const response = await fetch(path, { cache: "no-cache" });
      if (response.ok) await cache.put(path, response);
    }),
  );
}

self.addEventListener("install", (event) => {
  event.waitUntil(refreshShell(true).then(() => self.skipWaiting()));
});

self.addEventListener("activate", (event) => {
  event.waitUntil(
    (async () => {
      for (const name of await caches.keys()) {
        if (name !== CACHE) await caches.delete(name);
      }
      await self.clients.claim();
    })(),
  );
});

/** A shell file from this version's cache first (another version's may still be there for
 * a moment while a new worker takes over), then from any. */
async function cachedShell(request) {
  const own = (await caches.has(CACHE))
    ? await (await caches.open(CACHE)).match(request, { ignoreSearch: true })
    : undefined;
  return own || caches.match(request, { ignoreSearch: true });
}

async function navigate(event) {
  try {
    const response = await fetch(event.request);
    event.waitUntil(refreshShell().catch(() => {}));
    return response;
  } catch {
    const offline = await cachedShell(OFFLINE_PAGE);
    return offline || Response.error();
  }
}

async function networkFirst(request) {
  try {
    return await fetch(request);
  } catch (err) {
    const cached = await cachedShell(request);
    if (cached) return cached;
    throw err;
  }
}

self.addEventListener("fetch", (event) => {
  const request = event.request;
  if (request.method !== "GET") return;
  const url = new URL(request.url);
  if (url.origin !== self.location.origin) return;
  if (request.mode === "navigate" && PAGE_PATH.test(url.pathname)) {
    event.respondWith(navigate(event));
  } else if (OFFLINE_SHELL.includes(url.pathname)) {
    event.respondWith(networkFirst(request));
  }
});
