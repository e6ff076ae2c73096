"""RED (RFC 2198) with Chromium, end to end through the real server (tests/browser/redloss.py).

Alice talks; Bob's page negotiates RED (the answer lists ``red/48000/2`` first, and getStats
names ``audio/red``); Chloé's page offers no RED (munged out of its offer) and still hears
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

    assert result["talker_codec"] == "audio/red", detail  # Alice sends RED
    assert red["answer_has_red"] and red["inbound_codec"] == "audio/red", detail
    assert not plain["answer_has_red"] and plain["inbound_codec"] == "audio/opus", detail
    for listener in (red, plain):  # both heard the tone (measure waits for it) and kept on
        assert listener["packetsReceived"] > 100 and listener["relay_dropped"] > 0, detail
    # The same loss: Bob's decoder recovers lost frames from the next packet's redundancy,
    # Chloé's must conceal them.
    assert red["concealed_ratio"] < plain["concealed_ratio"], detail
