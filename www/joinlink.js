// Signed join links (`walkie token`, docs/PROTOCOL.md "Signed join tokens"): /r/<room>#token=<JWT>.
//
// The token travels in the URL fragment because a fragment never leaves the browser: no
// request, server log, proxy or Referer carries it. The page reads it here and sends it in
// its `join`; the server checks it. No DOM, no I/O.

/**
 * A signed join link's token, from the URL fragment `#token=<JWT>` (a fragment never leaves
 * the browser: no request, log or Referer carries it), the name it claims (shown until
 * `joined` says; the server checks the token) and whether it lets us listen only (then the
 * page never asks for the microphone). Null when there is none.
 */
export function tokenFromFragment(hash) {
  const token = new URLSearchParams(String(hash).replace(/^#/, "")).get("token");
  if (!token) return null;
  let name = "";
  let listenOnly = false;
  try {
    const payload = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    const bytes = Uint8Array.from(atob(payload), (c) => c.charCodeAt(0));
    const claims = JSON.parse(new TextDecoder().decode(bytes));
    if (claims && typeof claims.name === "string") name = claims.name;
    listenOnly = !!claims && claims.listen_only === true;
  } catch {
    // Not ours to judge: the server refuses a malformed token with a clear error.
  }
  return { token, name, listenOnly };
}
