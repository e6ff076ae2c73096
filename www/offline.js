// The offline page (served by sw.js in place of a page the network could not fetch): asks
// /healthz now and then, and when the browser comes back online, and reloads the address the
// user opened (the room) as soon as the server answers.

const status = document.getElementById("offline-status");
const retry = document.getElementById("offline-retry");
let delay = 2000; // doubles to 30 s
let timer = 0;

async function check() {
  clearTimeout(timer);
  try {
    const response = await fetch("/healthz", { cache: "no-store" });
    if (response.ok) {
      status.textContent = "The server is back. Opening…";
      location.reload();
      return;
    }
  } catch {
    /* still offline */
  }
  status.textContent = navigator.onLine
    ? `The server does not answer. Trying again in ${Math.round(delay / 1000)} s.`
    : `No network. Trying again in ${Math.round(delay / 1000)} s, or as soon as the network is back.`;
  timer = setTimeout(check, delay);
  delay = Math.min(30000, delay * 2);
}

retry.addEventListener("click", () => {
  delay = 2000;
  status.textContent = "Trying…";
  check();
});
window.addEventListener("online", () => check());
timer = setTimeout(check, delay);
