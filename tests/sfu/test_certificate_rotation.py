"""Issue 9, finding 7: the DTLS certificate is renewed before it expires.

With an injected clock, no sleeping: a :class:`CertificateKeeper` makes a new certificate
once less than a week of the current one is left; through the media core, a peer opened
after that gets the new fingerprint in its answer and connects with it, while a peer opened
before keeps the old certificate and still completes its handshake with it afterwards.
"""

from __future__ import annotations

import datetime
import random

from sfu.certificate import CERTIFICATE_LIFETIME, RENEW_BEFORE, Certificate, CertificateKeeper
from sfu.core import CoreConfig, MediaCore

from .memnet import Net
from .test_core import browser

DAY = 86400.0
T0 = 1.8e9  # Unix seconds: early 2027


def test_a_certificate_is_valid_from_a_day_before_now_for_its_lifetime() -> None:
    cert = Certificate.generate("x", now=T0)
    assert cert.expires.timestamp() == T0 + CERTIFICATE_LIFETIME.total_seconds()
    assert cert.cert.not_valid_before_utc.timestamp() == T0 - DAY


def test_the_keeper_renews_only_when_less_than_a_week_is_left() -> None:
    first = Certificate.generate("x", now=T0)
    keeper = CertificateKeeper(first, common_name="x")
    last_day_kept = CERTIFICATE_LIFETIME - RENEW_BEFORE
    assert keeper.current(T0) is first
    assert keeper.current(T0 + last_day_kept.total_seconds() - 1) is first
    assert keeper.renewals == 0
    now = T0 + last_day_kept.total_seconds() + 1
    second = keeper.current(now)
    assert second is not first and keeper.renewals == 1
    assert second.fingerprint() != first.fingerprint()
    assert second.expires.timestamp() == now + CERTIFICATE_LIFETIME.total_seconds()
    assert keeper.current(now + DAY) is second and keeper.certificate is second
    # a clock far past the end (a machine asleep for months): a valid one at once
    third = keeper.current(now + 365 * DAY)
    assert third.expires.timestamp() > now + 365 * DAY and keeper.renewals == 2


def test_new_peers_get_the_new_fingerprint_and_earlier_peers_keep_theirs() -> None:
    net_now = 1000.0
    # a certificate with 8 days left at the start of the test
    old = Certificate.generate("walkie", now=T0 - (CERTIFICATE_LIFETIME.days - 8) * DAY)
    core = MediaCore(CoreConfig("127.0.0.1", 40000), CertificateKeeper(old),
                     wall_offset=T0 - net_now, rng=random.Random(3))
    net = Net(core, now=net_now)
    early = net.join(browser("early", 1))  # answered with the old certificate ...
    assert early.local is not None
    assert early.local.fingerprint.value == old.fingerprint()

    net.now += 2 * DAY  # 6 days left: a new one for the next peer (no timers run meanwhile)
    late = net.connect(browser("late", 2))
    assert late.local is not None
    new = core.certificates.certificate
    assert new is not old and late.local.fingerprint.value == new.fingerprint()
    assert core.stats()["certificate_renewals"] == 1

    net.send(early, early.binding_request())  # ... and connects with it, after the renewal
    early.start_dtls(net.now)
    net.pump()
    assert early.srtp is not None
    assert [(e.kind, e.peer_id) for e in net.events if e.kind == "connected"] == [("connected", "late"),
                                                         ("connected", "early")]
    net.core.set_speaker("r", "early", net.now)
    payload = early.audio()
    net.pump()
    assert [p.payload for p in late.take_received()] == [payload]


def test_the_renewal_margin_is_configurable() -> None:
    keeper = CertificateKeeper(Certificate.generate("x", now=T0),
                               renew_before=datetime.timedelta(days=29))
    assert keeper.current(T0 + 0.5 * DAY).fingerprint() == keeper.certificate.fingerprint()
    assert keeper.renewals == 0
    keeper.current(T0 + 1.5 * DAY)
    assert keeper.renewals == 1
