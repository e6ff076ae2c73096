"""The hub's end-of-media timer: the media plane's speaker events revoke a silent holder.

The hub runs on a fake clock against the real router (as in test_hub.py); the events are
the router's own ``PeerEvent`` values, fed at the moment each test needs. The floor's own
rules are in test_floor.py; here: the events reach the holder's floor, ``floor_revoked``
``no_media`` goes to the holder and the floor to the next, a media reset or a new offer
gives the holder the media wait again, and events about others change nothing.
"""

from __future__ import annotations

import json

import sfu
from signaling.messages import FloorRequest

from .test_hub import SpeakerLog, join, make_hub, media, offer, sent, types  # noqa: F401

__all__ = ["media"]  # the fixture (the real router), used by name

NO_MEDIA = {"no_media_timeout": 3.0, "media_wait": 10.0}


async def test_a_holder_gone_silent_is_revoked_and_the_next_is_granted(media: SpeakerLog) -> None:
    hub, clock = make_hub(media, **NO_MEDIA)
    a, b, c = join(hub, "Ann"), join(hub, "Bob"), join(hub, "Cy")
    for client in (a, b):
        await offer(hub, media, client)
    hub.receive(a, FloorRequest())
    hub.receive(b, FloorRequest())
    assert hub.media_event(sfu.PeerEvent("speaker_active", a.peer_id, "r")) == []  # type: ignore[arg-type]
    clock.now += 30.0
    assert hub.tick() == []  # talking for 30 s: nothing to do
    # Ann's client froze: the media plane says so one second after her last packet.
    silent = sfu.PeerEvent("speaker_silent", a.peer_id, "r", silent_for=1.0)  # type: ignore[arg-type]
    assert hub.media_event(silent) == []
    clock.now += 1.9
    assert hub.tick() == []
    clock.now += 0.2  # three seconds after her last packet
    actions = hub.tick()
    assert sent(actions, a) == [
        {"type": "floor_revoked", "reason": "no_media"},
        {"type": "floor", "holder": b.member.public(), "queue_length": 0},  # type: ignore[union-attr]
    ]
    assert types(actions, b) == ["floor_granted", "floor"]
    assert types(actions, c) == ["floor"]
    assert media.calls[-1] == ("r", b.peer_id)


async def test_a_silence_reported_late_revokes_at_once(media: SpeakerLog) -> None:
    hub, clock = make_hub(media, **NO_MEDIA)
    a, b = join(hub, "Ann"), join(hub, "Bob")
    await offer(hub, media, a)
    hub.receive(a, FloorRequest())
    hub.media_event(sfu.PeerEvent("speaker_active", a.peer_id, "r"))  # type: ignore[arg-type]
    clock.now += 10.0
    late = sfu.PeerEvent("speaker_silent", a.peer_id, "r", silent_for=4.0)  # type: ignore[arg-type]
    actions = hub.media_event(late)
    assert [m["type"] for m in sent(actions, a)] == ["floor_revoked", "floor"]
    assert types(actions, b) == ["floor"]


async def test_audio_back_before_the_timeout_keeps_the_floor(media: SpeakerLog) -> None:
    hub, clock = make_hub(media, **NO_MEDIA)
    a = join(hub, "Ann")
    await offer(hub, media, a)
    hub.receive(a, FloorRequest())
    hub.media_event(sfu.PeerEvent("speaker_silent", a.peer_id, "r", silent_for=1.0))  # type: ignore[arg-type]
    clock.now += 1.5
    hub.media_event(sfu.PeerEvent("speaker_active", a.peer_id, "r"))  # type: ignore[arg-type]
    clock.now += 20.0
    assert hub.tick() == []


async def test_a_holder_without_media_gets_the_media_wait_then_is_revoked(media: SpeakerLog) -> None:
    hub, clock = make_hub(media, **NO_MEDIA)
    a, b = join(hub, "Ann"), join(hub, "Bob")  # Ann never offers: she cannot send audio
    hub.receive(a, FloorRequest())
    clock.now += 9.9
    assert hub.tick() == []
    clock.now += 0.2
    actions = hub.tick()
    assert sent(actions, a)[0] == {"type": "floor_revoked", "reason": "no_media"}
    assert types(actions, b) == ["floor"]


async def test_a_media_reset_gives_the_holder_the_media_wait_again(media: SpeakerLog) -> None:
    hub, clock = make_hub(media, max_talk_time=None, **NO_MEDIA)
    a = join(hub, "Ann")
    await offer(hub, media, a)
    hub.receive(a, FloorRequest())
    hub.media_event(sfu.PeerEvent("speaker_active", a.peer_id, "r"))  # type: ignore[arg-type]
    clock.now += 30.0
    old = a.peer_id
    media.router.remove_peer(old)  # type: ignore[arg-type]
    hub.media_event(sfu.PeerEvent("reset", old, "r", "media worker restarted"))  # type: ignore[arg-type]
    clock.now += 9.0  # a slow re-offer: still within the wait
    assert hub.tick() == []
    await offer(hub, media, a)
    hub.media_event(sfu.PeerEvent("speaker_active", a.peer_id, "r"))  # type: ignore[arg-type]
    clock.now += 20.0
    assert hub.tick() == []
    # A new offer while talking (recovering media without a reset) also restarts the wait.
    await offer(hub, media, a)
    clock.now += 10.1
    revoked = [json.loads(x.text) for x in hub.tick() if getattr(x, "client", None) is a]
    assert revoked[0] == {"type": "floor_revoked", "reason": "no_media"}


async def test_speaker_events_of_a_non_holder_or_unknown_peer_change_nothing(
    media: SpeakerLog,
) -> None:
    hub, clock = make_hub(media, **NO_MEDIA)
    a, b = join(hub, "Ann"), join(hub, "Bob")
    await offer(hub, media, a)
    await offer(hub, media, b)
    hub.receive(a, FloorRequest())
    hub.media_event(sfu.PeerEvent("speaker_active", a.peer_id, "r"))  # type: ignore[arg-type]
    assert hub.media_event(sfu.PeerEvent("speaker_silent", b.peer_id, "r", silent_for=9.0)) == []  # type: ignore[arg-type]
    assert hub.media_event(sfu.PeerEvent("speaker_silent", "ghost", "r", silent_for=9.0)) == []
    clock.now += 30.0
    assert hub.tick() == []
