"""walkie's media plane: a hand-built WebRTC audio forwarder (SFU) you can embed.

It terminates ICE-lite, DTLS-SRTP and RTP/RTCP for browsers on one UDP port and forwards the
current speaker's Opus packets, without decoding, to every other member of the room. Rooms,
names and floor control belong to the caller (walkie's own signaling service, or yours).

Example (runnable; see README.md for the full version)::

    import asyncio, sfu

    async def main(offer_sdp: str) -> None:
        router = await sfu.Router.start(sfu.RouterConfig(host="127.0.0.1", port=40000))
        router.add_listener(lambda event: print(event.kind, event.peer_id, event.reason))
        answer_sdp = router.add_peer("alice", "lobby", offer_sdp)  # give this to the browser
        router.set_speaker("lobby", "alice")   # forward alice's audio to the others
        ...
        await router.close()

``WorkerPool.start(n, config)`` runs the media plane in ``n`` worker processes (one per core),
each owning whole rooms on its own UDP port, restarted on that port if it dies. Signaling
uses the asynchronous control API both offer: ``await negotiate(peer, room, offer_sdp)``,
``remove_peer``, ``set_speaker``, ``add_listener``, ``stats``.
"""

from __future__ import annotations

from .core import CoreConfig, MediaCore, OfferError, PeerEvent
from .pool import WorkerGone, WorkerPool
from .router import Router, RouterConfig

__all__ = [
    "CoreConfig",
    "MediaCore",
    "OfferError",
    "PeerEvent",
    "Router",
    "RouterConfig",
    "WorkerGone",
    "WorkerPool",
]
