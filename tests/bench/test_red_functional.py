"""RED (RFC 2198) end to end through a real ``walkie serve``: a talker that negotiated RED,
a listener that negotiated it and one that did not (the bench's own client stack:
``bench/redloss.py``), and what each can decode with Opus (opuslib). Functional results
only: loss is applied at random in the listeners, and no figure of time is judged.
"""

from __future__ import annotations

import asyncio
import random

import pytest

from bench.audio import encode_loop
from bench.playout import PlayoutLog
from bench.redloss import Condition, run_condition
from bench.server import ServerProcess
from sfu.red import split_red

opuslib = pytest.importorskip("opuslib")

FRAMES = 60


def _run(condition: Condition, frames: list[bytes], count: int) -> tuple[dict, dict[str, PlayoutLog]]:
    server = ServerProcess.start(max_users=4, core=None)
    logs: dict[str, PlayoutLog] = {}
    try:
        result = asyncio.run(run_condition(server.url, condition, frames, count, 0.06,
                                           random.Random(3), logs))
    finally:
        server.stop()
    return result, logs


def test_red_listener_gets_red_and_plain_listener_gets_opus_both_decodable() -> None:
    frames = encode_loop("tone", 0.4)  # 20 distinct frames, looped
    result, logs = _run(Condition(0.0, 0.0, 0.0), frames, FRAMES)
    red, plain = logs["RED"], logs["Opus"]
    assert red.red_pt is not None and plain.red_pt is None  # what each one's answer said
    sent = [frames[k % len(frames)] for k in range(FRAMES)]

    (_, _, first_pt, marker, first), *rest = red.packets
    assert marker and (first_pt, first) == (red.opus_pt, sent[0])  # a burst starts plain
    assert {pt for _, _, pt, _, _ in rest} == {red.red_pt}
    blocks = [[(0, first)]] + [split_red(payload, red.opus_pt) for *_, payload in rest]
    assert [b[-1][1] for b in blocks] == sent  # the primary blocks: every frame, in order
    assert [b[:-1] for b in blocks[1:]] == [[(960, sent[k - 1])] for k in range(1, FRAMES)]
    assert {pt for _, _, pt, _, _ in plain.packets} == {plain.opus_pt}
    assert [payload for *_, payload in plain.packets] == sent  # the primary block alone

    for log, payloads in ((red, [d for b in blocks for _, d in b]),
                          (plain, [p for *_, p in plain.packets])):
        decoder = opuslib.Decoder(48000, 1)
        for payload in payloads:
            assert len(decoder.decode(payload, 960)) == 960 * 2, log
    for who in ("red_listener", "plain_listener"):
        count = result[who]
        assert count["playable_any"] == count["frames"] == FRAMES and count["bad_red"] == 0


def test_under_downlink_loss_the_red_listener_recovers_what_the_plain_one_loses() -> None:
    frames = encode_loop("speech", 0.4)
    result, _ = _run(Condition(0.0, 0.2, 0.0), frames, 200)
    red, plain = result["red_listener"], result["plain_listener"]
    assert plain["playable_any"] < plain["frames"]  # the loss took frames from it
    # A frame is gone for the RED listener only if its packet and the next one were lost
    # (about 4 % of frames here, against 20 % for the plain listener).
    assert red["playable_any"] > plain["playable_any"]
    assert red["recovered"] + red["late"] > 0 and red["bad_red"] == 0
