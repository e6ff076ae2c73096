"""Chromium listeners with and without RED (RFC 2198) behind a lossy relay, read from getStats.

One room: Alice talks (her fake mic plays the 440 Hz tone; Chromium sends RED because the
answer lists RED first); Bob negotiated RED; Chloé offered no RED (the test munges it out
of the offer the page sends, as a browser without RED would offer), so the server sends
her the primary blocks as plain Opus. Bob and Chloé each reach the server through their
own :class:`~tests.browser.lossyrelay.LossyRelay` with the same downlink loss and jitter
(the page is told the relay's port by munging the answer's candidate). Over a steady
window of Alice's talk, each listener's ``inbound-rtp`` stats give packets received and
lost, samples received and concealed (``concealedSamples``: what the decoder had to invent)
and ``fecPacketsReceived`` where Chromium reports it. Chromium 156 names the codec of a RED
stream ``audio/opus`` in getStats (the codec inside, for sender and receiver alike), so
what each listener was sent is read from the wire instead: the relays count the payload
types of the RTP headers (in the clear under SRTP).

Used by tests/browser/test_red_e2e.py; run alone for the figures in docs/BENCHMARKS.md::

    unshare -n sh -c 'ip link set lo up; ip addr add 127.0.0.2/8 dev lo; \\
        .venv/bin/python -m tests.browser.redloss'
"""

from __future__ import annotations

import json
import secrets
import socket
import sys
import tempfile
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from . import roomkit as rk
from .lossyrelay import LossyRelay

__all__ = ["free_udp_port", "measure", "page_stats"]

#: Before the page's scripts: remember every peer connection and the answers it was given;
#: point the answer's candidate at the relay (``relayPort``); take RED out of the offers the
#: page sends (``stripRed``). The page itself is not changed.
INIT_JS = """
(() => {
  const cfg = %s;
  const Native = window.RTCPeerConnection;
  window.__pcs = [];
  window.__answers = [];
  window.__offersSent = [];
  class Watched extends Native {
    constructor(...args) { super(...args); window.__pcs.push(this); }
    setRemoteDescription(desc) {
      if (desc && desc.sdp) {
        window.__answers.push(desc.sdp);
        if (cfg.relayPort) {
          const sdp = desc.sdp
            .replace(/(a=candidate:\\S+ \\d+ udp \\d+ 127\\.0\\.0\\.1 )\\d+/g, "$1" + cfg.relayPort)
            .replace(/^(m=audio )\\d+/m, "$1" + cfg.relayPort);
          desc = {type: desc.type, sdp};
        }
      }
      return super.setRemoteDescription(desc);
    }
  }
  window.RTCPeerConnection = Watched;
  const stripRed = (sdp) => {
    const m = /a=rtpmap:(\\d+) red\\/48000\\/2/i.exec(sdp);
    if (!m) return sdp;
    const pt = m[1];
    return sdp.split("\\r\\n")
      .filter((l) => !l.startsWith("a=rtpmap:" + pt + " ") && !l.startsWith("a=fmtp:" + pt + " "))
      .map((l) => l.startsWith("m=audio ")
        ? l.split(" ").filter((f, i) => i < 3 || f !== pt).join(" ") : l)
      .join("\\r\\n");
  };
  const send = WebSocket.prototype.send;
  WebSocket.prototype.send = function (data) {
    try {
      const msg = JSON.parse(data);
      if (msg.type === "offer") {
        if (cfg.stripRed) msg.sdp = stripRed(msg.sdp);
        window.__offersSent.push(msg.sdp);
        data = JSON.stringify(msg);
      }
    } catch (e) { /* not JSON: as it is */ }
    return send.call(this, data);
  };
})();
"""

#: The newest peer connection's audio RTP stats, with the codecs named.
STATS_JS = """async () => {
  const pc = window.__pcs[window.__pcs.length - 1];
  if (!pc) return null;
  const out = {inbound: null, outbound: null, codecs: {}};
  (await pc.getStats()).forEach((s) => {
    if (s.type === "codec") out.codecs[s.id] = s.mimeType;
    else if (s.type === "inbound-rtp" && s.kind === "audio") out.inbound = s;
    else if (s.type === "outbound-rtp" && s.kind === "audio") out.outbound = s;
  });
  const codec = (s) => (s && s.codecId ? out.codecs[s.codecId] || null : null);
  const pick = (s, keys) => s ? Object.fromEntries(keys.map((k) => [k, s[k] ?? null])) : null;
  return {
    inbound: pick(out.inbound, ["packetsReceived", "packetsLost", "concealedSamples",
      "silentConcealedSamples", "concealmentEvents", "totalSamplesReceived",
      "fecPacketsReceived", "fecPacketsDiscarded", "jitterBufferDelay",
      "jitterBufferEmittedCount"]),
    inboundCodec: codec(out.inbound),
    outbound: pick(out.outbound, ["packetsSent"]),
    outboundCodec: codec(out.outbound),
  };
}"""

_COUNTERS = ("packetsReceived", "packetsLost", "concealedSamples", "silentConcealedSamples",
             "concealmentEvents", "totalSamplesReceived", "fecPacketsReceived",
             "jitterBufferDelay", "jitterBufferEmittedCount")


def free_udp_port() -> int:
    """A UDP port free now on 127.0.0.1, for the server's ``--udp-port`` (the relays must
    know where to send)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def instrumented_page(context: Any, url: str, *, strip_red: bool = False,
                      relay_port: int | None = None) -> Any:
    page = context.new_page()
    page.add_init_script(script=INIT_JS % json.dumps({"stripRed": strip_red,
                                                      "relayPort": relay_port}))
    page.goto(url)
    return page


def page_stats(page: Any) -> dict[str, Any]:
    stats: dict[str, Any] = page.evaluate(STATS_JS)
    return stats


def _delta(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    b, a = before.get("inbound") or {}, after.get("inbound") or {}
    out: dict[str, Any] = {}
    for key in _COUNTERS:
        if a.get(key) is not None:
            out[key] = a[key] - (b.get(key) or 0)
    samples = out.get("totalSamplesReceived") or 0
    out["concealed_ratio"] = (out.get("concealedSamples", 0) / samples) if samples else None
    packets = out.get("packetsReceived", 0) + out.get("packetsLost", 0)
    out["loss_ratio"] = out.get("packetsLost", 0) / packets if packets else None
    return out


def measure(browser: Any, server_url: str, udp_port: int, *, loss: float, jitter: float,
            talk_seconds: float = 8.0, seed: int = 1) -> dict[str, Any]:
    """One room, one condition; what Bob (RED) and Chloé (no RED) got over the window."""
    room = "red-" + secrets.token_hex(3)
    relays = {name: LossyRelay(("127.0.0.1", udp_port), loss=loss, jitter=jitter,
                               seed=seed + i) for i, name in enumerate(("Bob", "Chloé"))}
    context = browser.new_context()
    try:
        def url(name: str) -> str:  # as Server.room_url (tests/browser/harness.py) writes it
            return f"{server_url}/r/{room}?" + urlencode({"name": name, "raw": "1"})

        alice = instrumented_page(context, url("Alice"))
        bob = instrumented_page(context, url("Bob"), relay_port=relays["Bob"].port)
        chloe = instrumented_page(context, url("Chloé"), strip_red=True,
                                  relay_port=relays["Chloé"].port)
        pages = {"Alice": alice, "Bob": bob, "Chloé": chloe}
        for page in pages.values():
            rk.wait_ready(page)
            rk.wait_members(page, 3)
        rk.hold(alice)
        rk.wait_floor(alice, "talking")
        for listener in (bob, chloe):
            rk.wait_talker(listener, "Alice")
            rk.wait_tone(listener)
        before = {name: page_stats(page) for name, page in pages.items()}
        alice.wait_for_timeout(talk_seconds * 1000)
        after = {name: page_stats(page) for name, page in pages.items()}
        rk.let_go(alice)
        result: dict[str, Any] = {"loss": loss, "jitter_ms": jitter * 1000,
                                  "talk_seconds": talk_seconds,
                                  "talker_codec": after["Alice"]["outboundCodec"]}
        for name in ("Bob", "Chloé"):
            answers = pages[name].evaluate("() => window.__answers")
            result[name] = {
                "answer_has_red": any("red/48000/2" in a for a in answers),
                "inbound_codec": after[name]["inboundCodec"],
                "relay_dropped": relays[name].rtp_dropped,
                "relay_forwarded": relays[name].rtp_forwarded,
                "downlink_payload_types": dict(relays[name].payload_types),
                **_delta(before[name], after[name]),
            }
        return result
    finally:
        context.close()
        for relay in relays.values():
            relay.close()


CONDITIONS = ((0.0, 0.0), (0.05, 0.0), (0.15, 0.0), (0.05, 0.03), (0.15, 0.03))


def main() -> int:
    """Every condition of :data:`CONDITIONS`, printed as JSON lines (docs/BENCHMARKS.md)."""
    from playwright.sync_api import sync_playwright

    from .harness import CHROMIUM, CHROMIUM_ARGS, chromium_skip_reason, start_server, write_tone

    reason = chromium_skip_reason()
    if reason:
        print(reason, file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        port = free_udp_port()
        server = start_server(Path(tmp), "--udp-port", str(port))
        tone = write_tone(Path(tmp) / "tone440.wav")
        try:
            with sync_playwright() as p:
                browser = p.chromium.launch(
                    executable_path=CHROMIUM,
                    args=[*CHROMIUM_ARGS, f"--use-file-for-fake-audio-capture={tone}"])
                for loss, jitter in CONDITIONS:
                    print(json.dumps(measure(browser, server.url, port, loss=loss,
                                             jitter=jitter, talk_seconds=20.0),
                                     ensure_ascii=False), flush=True)
                browser.close()
        finally:
            server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
