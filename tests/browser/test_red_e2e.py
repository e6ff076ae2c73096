"""RED (RFC 2198) with Chromium, end to end through the real server (tests/browser/redloss.py).

Alice talks; Bob's page negotiates RED (the answer lists ``red/48000/2`` first, and Alice's
RED reaches him as RED: payload type 63 on the wire); Chloé's page offers no RED (munged out of its offer) and still hears
the 440 Hz tone as plain Opus, the primary blocks the server cut out of Alice's RED. Both
listen through a lossy relay (15 % of downlink RTP dropped, 30 ms of jitter): what each
had to conceal is compared, not timed.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from .harness import Server
from .redloss import free_udp_port, measure

pytestmark = pytest.mark.browser


def test_red_is_negotiated_with_chromium_and_a_listener_without_red_hears_opus(
        browser, server_factory: Callable[..., Server]) -> None:  # noqa: ANN001
    port = free_udp_port()
    server = server_factory("--udp-port", str(port))
    result = measure(browser, server.url, port, loss=0.15, jitter=0.03, talk_seconds=6.0)
    red, plain = result["Bob"], result["Chloé"]
    detail = repr(result)

    # RED negotiated with Bob's page and not with Chloé's; Chromium 156's getStats names the
    # codec inside RED (audio/opus) for both, so the wire says what each was sent: Alice's
    # RED (63) to Bob, its primary blocks as Opus (111) to Chloé. Each burst starts with
    # one plain Opus packet (sfu/core.py), hence Bob's few 111s.
    assert red["answer_has_red"] and not plain["answer_has_red"], detail
    assert red["inbound_codec"] == plain["inbound_codec"] == "audio/opus", detail
    red_pts, plain_pts = red["downlink_payload_types"], plain["downlink_payload_types"]
    assert red_pts.get(63, 0) > 100 and red_pts.get(111, 0) <= 2, detail
    assert set(plain_pts) == {111}, detail
    for listener in (red, plain):  # both heard the tone (measure waits for it) and kept on
        assert listener["packetsReceived"] > 100 and listener["relay_dropped"] > 0, detail
    # The same loss: Bob's decoder recovers lost frames from the next packet's redundancy,
    # Chloé's must conceal them.
    assert red["concealed_ratio"] < plain["concealed_ratio"], detail
