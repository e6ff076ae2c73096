"""Property tests over the whole SDP pipeline (parse, select, answer): whatever the input,
the only failure is SdpError, and whatever succeeds yields an answer that parses back."""
from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sfu.sdp import SdpError, build_answer, parse_offer, select_audio
from tests.sfu.sdp_helpers import ALL_FIXTURES, load, make_local


def _serve(text: str) -> None:
    """Run the whole pipeline; any outcome but success or SdpError fails the property."""
    offer = parse_offer(text)
    sel = select_audio(offer)
    answer = build_answer(offer, sel, make_local(), session_id=1)
    assert parse_offer(answer).media[sel.index].formats == [str(pt) for pt in sel.payload_types]


# SDP-shaped noise: valid line structure, hostile values, so parsing gets past line 1.
_sdp_line = st.builds(
    lambda kind, value: f"{kind}={value}",
    st.sampled_from("aaaaaamcos tbv"),
    st.one_of(
        st.text(max_size=40),
        st.builds(lambda n, v: f"{n}:{v}", st.sampled_from(
            ["rtpmap", "fmtp", "extmap", "fingerprint", "ssrc", "ssrc-group", "group", "msid",
             "mid", "ice-ufrag", "ice-pwd", "setup", "rtcp-fb", "candidate", "sctp-port",
             "sendrecv", "rtcp-mux", "bundle-only"]),
            st.text(alphabet="0123456789 :/abcABC-*x\t.é{}", max_size=30)),
        st.builds(lambda p, f: f"audio {p} UDP/TLS/RTP/SAVPF {f}",
                  st.integers(0, 70000), st.text(alphabet="0123456789 ", min_size=1, max_size=8)),
    ),
)


@given(st.lists(_sdp_line, max_size=25))
def test_sdp_shaped_noise_only_raises_sdp_error(lines: list[str]) -> None:
    text = "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\n" + "\r\n".join(lines)
    try:
        _serve(text)
    except SdpError:
        pass


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(
    st.sampled_from(ALL_FIXTURES),
    st.lists(st.tuples(st.integers(0, 10_000), st.sampled_from(["delete", "replace", "dup"]),
                       st.text(max_size=30)), min_size=1, max_size=4),
)
def test_mutated_real_offers_only_raise_sdp_error(
    name: str, edits: list[tuple[int, str, str]]
) -> None:
    lines = load(name).split("\r\n")
    for position, action, text in edits:
        i = position % len(lines)
        if action == "delete":
            del lines[i]
        elif action == "dup":
            lines.insert(i, lines[i])
        else:
            kind = lines[i].split(":", 1)[0] if ":" in lines[i] else lines[i][:2]
            lines[i] = kind + ":" + text
        if not lines:
            lines = [""]
    try:
        _serve("\r\n".join(lines))
    except SdpError:
        pass
