"""The declared dependency bounds are the ones ci/test proves, and what sfu reaches into exists.

ci/test runs the non-browser tests a second time with exactly ci/min-versions.txt; these
tests keep that file equal to pyproject.toml's ``>=`` bounds, and check (at whatever release
is installed, so both at the minimum and at the newest) the private pylibsrtp handles that
sfu/srtp.py's fast path uses, so a release without them cannot go unnoticed behind the
slower public fallback.
"""

from __future__ import annotations

import asyncio
import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
_REQUIREMENT = re.compile(r"([A-Za-z0-9_.-]+)\s*(>=|==)\s*([0-9][0-9A-Za-z.]*)\s*(;.*)?")


def _parse(lines: list[str], operator: str) -> dict[str, tuple[str, str]]:
    """{name: (version, marker)} of requirements written ``name OP version[; marker]``."""
    found = {}
    for line in lines:
        line = line.split(" #", 1)[0].strip()
        if not line or line.startswith("#"):
            continue
        match = _REQUIREMENT.fullmatch(line)
        assert match and match.group(2) == operator, f"expected name{operator}version: {line!r}"
        name, _, version, marker = match.groups()
        found[name.lower()] = (version, (marker or "").lstrip("; ").strip())
    return found


def _release(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split("."))


def _padded(version: tuple[int, ...]) -> tuple[int, ...]:
    return version + (0,) * (3 - len(version))


def test_min_versions_are_the_declared_bounds() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = _parse(project["dependencies"], ">=")
    pinned = _parse((ROOT / "ci" / "min-versions.txt").read_text().splitlines(), "==")
    assert declared, "no runtime dependency found in pyproject.toml"
    for name, (bound, marker) in declared.items():
        assert name in pinned, f"ci/min-versions.txt does not pin {name}"
        version, pin_marker = pinned[name]
        assert _padded(_release(version)) == _padded(_release(bound)), (name, version, bound)
        assert pin_marker == marker, name


def test_the_srtp_fast_path_reaches_libsrtp() -> None:
    import pylibsrtp

    from sfu import srtp

    policy = pylibsrtp.Policy(key=b"k" * 28, ssrc_type=pylibsrtp.Policy.SSRC_ANY_OUTBOUND,
                              srtp_profile=pylibsrtp.Policy.SRTP_PROFILE_AEAD_AES_128_GCM)
    session = pylibsrtp.Session(policy=policy)
    assert session._srtp[0] and session._cdata and session._buffer  # what sfu.srtp reuses
    keys = srtp.SrtpKeys(srtp.PROFILE_AEAD_AES_128_GCM, b"k" * 16, b"s" * 12, b"K" * 16,
                         b"S" * 12)
    packet = bytes([0x80, 111, 0, 1, 0, 0, 0, 160, 0, 0, 0, 42]) + b"opus" * 10
    sender, receiver = srtp.SrtpSession(keys), srtp.SrtpSession(keys.mirrored())
    assert receiver.unprotect(sender.protect(packet)) == packet


async def test_the_keepalive_fast_ping_reaches_websockets() -> None:
    """signaling/keepalive.py writes Pings with the connection's own ping bookkeeping; a
    websockets release without it would silently fall back to a task per Ping."""
    from websockets.asyncio.client import connect
    from websockets.asyncio.server import ServerConnection, serve

    from signaling.keepalive import _send_ping, fast_ping_supported

    seen: list[ServerConnection] = []
    answered: list[float] = []

    async def handler(ws: ServerConnection) -> None:
        seen.append(ws)
        assert fast_ping_supported(ws)
        answered.append(await _send_ping(ws, asyncio.get_running_loop().time()))
        await ws.close()

    async with serve(handler, "127.0.0.1", 0, ping_interval=None) as server:
        port = server.sockets[0].getsockname()[1]
        async with connect(f"ws://127.0.0.1:{port}/", ping_interval=None) as client:
            await client.wait_closed()
    assert seen and len(answered) == 1 and answered[0] >= 0  # the Pong resolved our future
