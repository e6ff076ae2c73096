"""RED (RFC 2198) in the SDP: accepted from offers that carry a usable one, answered first,
ignored otherwise; Opus keeps in-band FEC either way."""
from __future__ import annotations

import pytest

from sfu.sdp import SdpError, parse_offer, select_audio
from tests.sfu.sdp_helpers import ALL_FIXTURES, CHROME, answer_for, load, sub1

#: What each captured offer says about RED: Chromium 156 (and Safari) offer
#: ``a=rtpmap:63 red/48000/2`` + ``a=fmtp:63 111/111`` after Opus; Firefox ESR 153 none.
RED_OF = {name: (63 if name.startswith(("chrome", "safari")) else None) for name in ALL_FIXTURES}


@pytest.mark.parametrize("name", ALL_FIXTURES)
def test_red_is_selected_exactly_when_the_browser_offers_it(name: str) -> None:
    sel = select_audio(parse_offer(load(name)))
    assert sel.red_pt == RED_OF[name]


@pytest.mark.parametrize("name", ALL_FIXTURES)
def test_the_answer_puts_red_first_and_keeps_opus_fec(name: str) -> None:
    offer, sel, text = answer_for(load(name))
    served = parse_offer(text).media[sel.index]
    pt = sel.opus_pt
    assert served.fmtp[pt] == "minptime=10;useinbandfec=1"
    if RED_OF[name] is None:
        assert served.formats == [str(pt)] and "red/" not in text
    else:
        red = RED_OF[name]
        assert served.formats == [str(red), str(pt)]
        assert served.rtpmap[red] == ("red", 48000, 2)
        assert served.fmtp[red] == f"{pt}/{pt}"


def test_an_offer_with_red_removed_gets_plain_opus() -> None:
    """What a page that munged RED out of its offer (or any non-RED client) is answered."""
    text = sub1(" 111 63 ", " 111 ", load(CHROME))
    text = sub1("^a=rtpmap:63 red/48000/2\r\na=fmtp:63 111/111\r\n", "", text)
    offer, sel, answer = answer_for(text)
    assert sel.red_pt is None and "red/48000" not in answer
    assert parse_offer(answer).media[0].formats == ["111"]


def test_red_around_another_opus_payload_type() -> None:
    sel = select_audio(parse_offer(load(CHROME).replace("111", "109")))
    assert (sel.red_pt, sel.opus_pt) == (63, 109)


@pytest.mark.parametrize(
    "fmtp",
    [
        None,  # no a=fmtp for RED: which codec is inside is unknown
        "0/0",  # PCMU inside
        "111/0",  # a mix
        "111/111/111/111/111/111",  # more blocks than we forward
        "abc",
        "111//111",
    ],
)
def test_unusable_red_is_ignored_and_opus_still_served(fmtp: str | None) -> None:
    text = sub1("^a=fmtp:63 111/111\r\n", "" if fmtp is None else f"a=fmtp:63 {fmtp}\r\n",
                load(CHROME))
    offer, sel, answer = answer_for(text)
    assert sel.red_pt is None and sel.opus_pt == 111
    assert parse_offer(answer).media[0].formats == ["111"]


def test_an_empty_red_fmtp_is_a_clear_syntax_error() -> None:
    """The one RED shape refused rather than ignored: ``a=fmtp:63`` with no value is not
    SDP (RFC 8866 wants a format and its parameters), whatever codec it names."""
    text = sub1("^a=fmtp:63 111/111$", "a=fmtp:63 ", load(CHROME))
    with pytest.raises(SdpError, match="malformed a=fmtp"):
        answer_for(text)


def test_red_at_another_clock_rate_is_not_ours() -> None:
    text = sub1("a=rtpmap:63 red/48000/2$", "a=rtpmap:63 red/8000", load(CHROME))
    assert select_audio(parse_offer(text)).red_pt is None


def test_one_block_type_in_the_fmtp_is_enough() -> None:
    """RFC 2198 §5 lists the blocks' types; one entry (``111``) already names Opus."""
    text = sub1("^a=fmtp:63 111/111$", "a=fmtp:63 111", load(CHROME))
    assert select_audio(parse_offer(text)).red_pt == 63
