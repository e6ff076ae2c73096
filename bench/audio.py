"""Synthetic talker audio, Opus-encoded once up front.

Why pre-encode: one Opus encode of a 20 ms mono frame costs ~86 µs (opuslib, one core of a
2-vCPU EPYC VM). Hundreds of talkers encoding live would make the bench measure its own
encoder, not the server. A loop of real Opus frames, encoded once and replayed, gives the
server exactly the packets a browser would send (sizes vary like speech, TOC bytes are real)
at no per-packet cost.

Two sources:

* ``speech``: speech-like noise: a 120 Hz glottal buzz plus noise, shaped by a 3-4 Hz
  syllable envelope with short pauses, so Opus produces the variable frame sizes of talk;
* ``tone``: a steady 440 Hz sine (what a browser's fake microphone sends).
"""

from __future__ import annotations

import math
import random
import struct

__all__ = ["FRAME_SAMPLES", "SAMPLE_RATE", "AudioError", "encode_loop", "synthesize"]

SAMPLE_RATE = 48000
#: 20 ms at 48 kHz: the frame every browser sends for Opus.
FRAME_SAMPLES = 960


class AudioError(ValueError):
    """Bad synthesis or encoding parameters."""


def synthesize(kind: str, seconds: float, seed: int = 1) -> list[int]:
    """Mono 16-bit samples of ``kind`` ('speech' or 'tone'), deterministic for a seed."""
    if kind not in ("speech", "tone"):
        raise AudioError(f"unknown audio kind {kind!r} (speech or tone)")
    if not 0.02 <= seconds <= 60:
        raise AudioError("loop length must be 0.02..60 s")
    n = int(seconds * SAMPLE_RATE) // FRAME_SAMPLES * FRAME_SAMPLES
    two_pi = 2 * math.pi
    if kind == "tone":
        return [int(12000 * math.sin(two_pi * 440 * i / SAMPLE_RATE)) for i in range(n)]
    rng = random.Random(seed)
    out = []
    low = 0.0
    for i in range(n):
        t = i / SAMPLE_RATE
        # Syllables at ~3.5 Hz; a pause of ~0.3 s every 1.7 s makes DTX-like quiet frames.
        envelope = max(0.0, math.sin(two_pi * 3.5 * t)) ** 0.5
        if (t % 1.7) > 1.4:
            envelope *= 0.05
        pitch = 120 + 20 * math.sin(two_pi * 0.7 * t)
        buzz = sum(math.sin(two_pi * pitch * h * t) / h for h in (1, 2, 3, 5))
        low += 0.25 * (rng.uniform(-1.0, 1.0) - low)  # one-pole low-passed noise
        out.append(int(6000 * envelope * (0.6 * buzz + 1.5 * low)))
    return out


def encode_loop(
    kind: str = "speech", seconds: float = 2.0, bitrate: int = 32000, seed: int = 1
) -> list[bytes]:
    """Opus frames (20 ms each) of ``seconds`` of synthetic audio, to be replayed in a loop.

    Raises AudioError for bad parameters, or when opuslib / libopus is missing (the bench
    cannot run without real Opus frames).
    """
    try:
        import opuslib
    except (ImportError, OSError) as exc:  # opuslib absent, or libopus missing (ctypes)
        raise AudioError(f"opuslib is needed for the bench: {exc}") from None
    if not 6000 <= bitrate <= 510000:
        raise AudioError("bitrate must be 6000..510000 bit/s")
    samples = synthesize(kind, seconds, seed)
    encoder = opuslib.Encoder(SAMPLE_RATE, 1, opuslib.APPLICATION_VOIP)
    encoder.bitrate = bitrate
    frames = []
    pack = struct.Struct(f"<{FRAME_SAMPLES}h").pack
    for start in range(0, len(samples), FRAME_SAMPLES):
        pcm = pack(*samples[start : start + FRAME_SAMPLES])
        frames.append(bytes(encoder.encode(pcm, FRAME_SAMPLES)))
    return frames
