"""The talker's packets, read back with the SFU's own parser after real SRTP."""

from __future__ import annotations

import os

import pytest

from bench.audio import AudioError, encode_loop, synthesize
from bench.uplink import RING, UplinkError, UplinkStream
from sfu.rtp import parse_rtp, read_uplink
from sfu.srtp import PROFILE_AES_CM_128_HMAC_SHA1_80, SrtpKeys, SrtpSession


def _sessions() -> tuple[SrtpSession, SrtpSession]:
    keys = SrtpKeys(PROFILE_AES_CM_128_HMAC_SHA1_80, os.urandom(16), os.urandom(14),
                    os.urandom(16), os.urandom(14))
    return SrtpSession(keys), SrtpSession(keys.mirrored())


def test_packets_carry_seq_bits_in_level_and_follow_the_tick_clock() -> None:
    client, server = _sessions()
    frames = [b"a" * 30, b"b" * 31, b"c" * 32]
    clock = iter(range(10**9, 2 * 10**9, 1000)).__next__
    up = UplinkStream(0xCAFE, frames, client.protect, clock, audio_level_id=1, mid_ext_id=4,
                      initial_seq=65534, initial_timestamp=0xFFFFFF00)
    up.start_burst()
    pkts = [parse_rtp(server.unprotect(up.next_packet(tick))) for tick in (0, 1, 5)]
    assert [p.sequence for p in pkts] == [65534, 65535, 0]  # the wire wraps, the counter not
    assert up.seq == 65537
    assert [p.marker for p in pkts] == [True, False, False]
    assert [p.timestamp for p in pkts] == [0xFFFFFF00, (0xFFFFFF00 + 960) & 0xFFFFFFFF,
                                           (0xFFFFFF00 + 5 * 960) & 0xFFFFFFFF]
    for full, p in zip((65534, 65535, 65536), pkts, strict=True):
        assert p.ssrc == 0xCAFE and p.payload_type == 111
        assert p.extensions[1] == bytes([0x80 | (full % RING)])
        assert p.extensions[4] == b"0"
        assert p.payload == frames[full % 3]
        assert up.log.seqs[full % RING] == full
    assert up.log.send_ns[65536 % RING] > up.log.send_ns[65535 % RING]
    # the SFU's hot-path reader sees the level octet the listener will match on
    plain = server.unprotect(up.next_packet(6))
    assert read_uplink(plain, 1)[3] == 0x80 | (65537 % RING)


def test_bad_parameters() -> None:
    with pytest.raises(UplinkError):
        UplinkStream(1, [], lambda b: b, lambda: 0)
    with pytest.raises(UplinkError):
        UplinkStream(1, [b"x"], lambda b: b, lambda: 0, audio_level_id=15)


def test_opus_loop_is_real_opus() -> None:
    opuslib = pytest.importorskip("opuslib")
    frames = encode_loop("speech", 0.4)
    assert len(frames) == 20
    decoder = opuslib.Decoder(48000, 1)
    for frame in frames:
        assert len(decoder.decode(frame, 960)) == 960 * 2  # 16-bit mono PCM
    assert len({len(f) for f in encode_loop("speech", 2.0)}) > 5  # speech-like: sizes vary
    with pytest.raises(AudioError):
        synthesize("noise", 1.0)
    with pytest.raises(AudioError):
        encode_loop("tone", 1.0, bitrate=10)
