"""Fuzz target for the real attack surface: any datagram, from any address, into a
``MediaCore`` whose room has three connected browsers (``tests/sfu/memnet.py``): *a* and
*b* negotiated RED (RFC 2198; *b* under other payload types: Opus 109, RED 100), *c* did not
and only listens, so *a*'s RED packets reach every fan-out path (as-is, re-tagged, primary).

The input is a list of frames (``harness.frames``). An op's low 3 bits say what to do, the
next bits from where or for whom:

====  =====================================================================================
 0,7  send the payload as it is
 1    protect the payload as SRTP (an RTP packet) with the session of the browser at the
      source (browser *a*'s for a stranger), then send it: reaches RTP parsing and fan-out
 2    the same as SRTCP: reaches RTCP parsing and reports
 3    sign the payload as a Binding request (12-byte transaction id, then attributes) with
      the ICE password of browser *a* or *b* (bit 5), then send it: reaches the checks
      after MESSAGE-INTEGRITY, address binding, moves and theft. A USERNAME attribute for
      that browser goes first unless bit 6 is set (the core's ufrag is random, so seed
      inputs could not carry it)
 4    let ``20 ms × payload[0]`` pass: the core's timers run (consent, DTLS, RTCP)
 5    make *a*, *b* or nobody the speaker (bits 3-4)
 6    the next Opus RTP packet of the browser at the source: payload bytes 0-1 and 2-5 are
      added to its sequence number and timestamp steps, the rest is the audio
====  =====================================================================================

Bits 3-4 of ops 0-3 and 6 choose the source: *a*'s address, *b*'s, a stranger's, or an
IPv6 stranger's. After each frame the in-memory network delivers whatever the core sent
(the browsers answer DTLS as browsers do).

Expected: nothing; the core never raises for network input. Must hold: the core sends
nothing to an address that has not sent a check signed with a peer's password (RFC 7675:
no reflection, no amplification), and its stats stay JSON-ready.

The core and its three browsers are kept between inputs (three DTLS handshakes per input
would cost ~100 times the input itself) and rebuilt when an input disconnected any
browser or moved it away, and every 500 inputs (fuzzed SRTP sequence numbers can leave the
sessions out of step).
"""

from __future__ import annotations

import json
import random

from sfu.core import CoreConfig, MediaCore
from sfu.srtp import SrtpError
from tests.sfu.memnet import Browser, Net
from tests.sfu.peerclient import opus_rtp
from tests.sfu.test_ice import tlv

from .harness import check, frames
from .packets import IDENTITIES, sign_check

__all__ = ["datagrams"]

Address = tuple[str, int]
_A: Address = ("127.0.0.1", 50000)
_B: Address = ("127.0.0.1", 50001)
_C: Address = ("127.0.0.1", 50003)  # a listener only: never a source of fuzzed input
_SOURCES: tuple[Address, ...] = (_A, _B, ("127.0.0.1", 50002), ("::1", 50000))
_REBUILD_EVERY = 500
# One input stays cheap (libFuzzer's -timeout is 30 s, on a loaded machine): this many
# frames, and time steps only while the input has covered less than this much time.
_MAX_FRAMES = 64
_MAX_SECONDS = 120.0


class _World:
    """One core, one room ``r``, browsers *a* (the speaker), *b* and *c*, all connected."""

    def __init__(self) -> None:
        core = MediaCore(CoreConfig("127.0.0.1", 40000), IDENTITIES["server"],
                         wall_offset=1.7e9, rng=random.Random(5))
        self.net = Net(core)
        self.a = self.net.connect(Browser("a", _A, ufrag="afuz", pwd="a" * 22, red_pt=63))
        self.b = self.net.connect(Browser("b", _B, ufrag="bfuz", pwd="b" * 22, opus_pt=109,
                                          red_pt=100))
        self.c = self.net.connect(Browser("c", _C, ufrag="cfuz", pwd="c" * 22))
        core.set_speaker("r", "a", self.net.now)
        self.net.pump()
        self.inputs = 0

    @property
    def core(self) -> MediaCore:
        return self.net.core

    def healthy(self) -> bool:
        for browser in (self.a, self.b, self.c):
            stats = self.core.peer_stats(browser.name)
            if stats is None or not stats["connected"] or stats["address"] != list(browser.address):
                return False
        return self.inputs < _REBUILD_EVERY


_world: _World | None = None


def _browser_at(world: _World, source: Address) -> Browser:
    return world.b if source == _B else world.a


def _step(world: _World, op: int, payload: bytes, checked: set[Address]) -> None:
    net = world.net
    action = op & 7
    source = _SOURCES[(op >> 3) & 3]
    browser = _browser_at(world, source)
    data: bytes | None = payload
    if action == 1 or action == 6:
        if action == 6:  # the browser's next packet, its numbers moved on by the payload
            browser.seq = (browser.seq + 1 + int.from_bytes(payload[:2], "big")) & 0xFFFF
            browser.timestamp = (browser.timestamp + 960 + int.from_bytes(payload[2:6], "big")
                                 ) & 0xFFFFFFFF
            payload = opus_rtp(browser.ssrc, browser.seq, browser.timestamp, payload[6:], 0x20)
        data = _protect(browser, payload, rtcp=False)
    elif action == 2:
        data = _protect(browser, payload, rtcp=True)
    elif action == 3:
        signer = world.b if op & 0x20 else world.a
        assert signer.local is not None
        attributes = payload[12:]
        if not op & 0x40:
            username = f"{signer.local.ice_ufrag}:{signer.ufrag}".encode()
            attributes = tlv(0x0006, username) + attributes  # USERNAME
        data = sign_check(payload[:12], attributes, signer.local.ice_pwd)
        checked.add(source)
    elif action == 4:
        net.advance(0.02 * (payload[0] if payload else 1))
        return
    elif action == 5:
        # As the hub does: name a speaker only while it is there (the control API refuses
        # others with KeyError; an input may have made the core drop a peer or the room).
        speaker = ("a", "b", None, None)[(op >> 3) & 3]
        if speaker is None or world.core.peer_stats(speaker) is not None:
            world.core.set_speaker("r", speaker, net.now)
        data = None
    if data is not None:
        world.core.handle_datagram(net.now, source, data)
    net.pump()


def _protect(browser: Browser, plain: bytes, *, rtcp: bool) -> bytes | None:
    """``plain`` as SRTP/SRTCP of ``browser``'s session, or None if libsrtp refuses it."""
    assert browser.srtp is not None
    try:
        return browser.srtp.protect_rtcp(plain) if rtcp else browser.srtp.protect(plain)
    except (SrtpError, ValueError):
        return None  # not RTP-shaped enough, or longer than pylibsrtp's buffer


def datagrams(data: bytes) -> None:
    """The target: see the module docstring."""
    global _world
    if _world is None or not _world.healthy():
        _world = _World()
    world = _world
    world.inputs += 1
    checked: set[Address] = {_A, _B, _C}
    start = world.net.now
    for count, (op, payload) in enumerate(frames(data)):
        if count == _MAX_FRAMES or world.net.now - start > _MAX_SECONDS:
            break
        _step(world, op, payload, checked)
        lost, world.net.lost = world.net.lost, []
        for _, address in lost:
            check(address in checked, f"sent to {address}, which never passed a check")
    json.dumps(world.core.stats())
    for name in ("a", "b", "c"):
        json.dumps(world.core.peer_stats(name))
