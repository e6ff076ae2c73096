"""walkie's TURN credentials against the real coturn (``use-auth-secret``), no browser.

A signaling server with ``--turn-url``/``--turn-secret`` hands a joining WebSocket client its
``ice_servers``; a TURN client (aioice's) then allocates a relay on coturn with exactly those
credentials. With the secret coturn knows, the allocation succeeds; with another, coturn
answers 401. This proves the HMAC scheme matches coturn's, not just our own idea of it.

:class:`Coturn` is also used by tests/browser/test_turn_relay.py: it starts ``turnserver`` on
127.0.0.1 with free ports, waits until its TCP listener answers (coturn listens on TCP as
well as UDP), and stops it by PID.
"""

from __future__ import annotations

import asyncio
import random
import secrets
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from aioice.stun import TransactionFailed

from signaling.turn import TurnConfig, turn_credential

TURNSERVER = shutil.which("turnserver") or "/usr/bin/turnserver"
REPO = Path(__file__).resolve().parents[2]
REALM = "walkie.test"


def _port_free(port: int, kind: int) -> bool:
    with socket.socket(socket.AF_INET, kind) as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _free_tcp_udp_port() -> int:
    """A port free for both TCP and UDP on 127.0.0.1 (coturn listens on both)."""
    for _ in range(200):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        if _port_free(port, socket.SOCK_DGRAM):
            return port
    raise RuntimeError("no free TCP+UDP port")


def _free_relay_range(size: int = 20) -> tuple[int, int]:
    """A run of ``size`` free UDP ports for coturn's relay allocations."""
    for _ in range(200):
        low = random.randrange(50000, 60000 - size)
        if all(_port_free(p, socket.SOCK_DGRAM) for p in range(low, low + size)):
            return low, low + size - 1
    raise RuntimeError("no free UDP port range")


class Coturn:
    """One ``turnserver`` process with ``use-auth-secret`` on 127.0.0.1."""

    def __init__(self, workdir: Path, secret: str, config: Path | None = None) -> None:
        """``config``: a turnserver.conf to read (its secret must be ``secret``); without
        one, a command line with use-auth-secret, ``secret`` and realm walkie.test."""
        self.secret = secret
        self.port = _free_tcp_udp_port()
        self.relay_range = _free_relay_range()
        self.log_path = workdir / f"turnserver-{self.port}.log"
        settings = (["-c", str(config)] if config else
                    ["-n", "--use-auth-secret", f"--static-auth-secret={secret}",
                     f"--realm={REALM}", "--no-cli"])
        args = [
            TURNSERVER, *settings,
            "--listening-ip=127.0.0.1", "--relay-ip=127.0.0.1",
            f"--listening-port={self.port}",
            # The SFU is a loopback peer here; production keeps loopback peers denied.
            "--allow-loopback-peers",
            "--no-tls", "--no-dtls",
            f"--min-port={self.relay_range[0]}", f"--max-port={self.relay_range[1]}",
            f"--pidfile={workdir / f'turnserver-{self.port}.pid'}",
            f"--userdb={workdir / f'turndb-{self.port}'}",
            # Its own log file (stdout to a file would be block-buffered) with one line per
            # request, so tests can read what coturn decided.
            f"--log-file={self.log_path}", "--simple-log", "--verbose",
        ]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            self._wait_listening(10.0)
        except BaseException:
            self.stop()
            raise

    @property
    def url(self) -> str:
        return f"turn:127.0.0.1:{self.port}?transport=udp"

    def _wait_listening(self, timeout: float) -> None:
        """Readiness: coturn also listens on TCP, so a TCP connect is a cheap probe."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"turnserver exited:\n{self.log()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"turnserver did not start listening:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()  # by PID
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)


def coturn_skip_reason() -> str | None:
    if not Path(TURNSERVER).exists():
        return "turnserver (coturn) is missing: apt-get install coturn (ci/test does it)"
    return None


@pytest.fixture
def coturn(tmp_path: Path) -> Iterator[Coturn]:
    reason = coturn_skip_reason()
    if reason:
        pytest.skip(reason)
    server = Coturn(tmp_path, "coturn-" + secrets.token_hex(12))
    yield server
    server.stop()


pytestmark = pytest.mark.turn


class _Sink(asyncio.DatagramProtocol):
    """Receives what arrives through the relay (nothing is expected; it must only exist)."""


async def _joined_ice_servers(make_server, client_factory, config: TurnConfig
                              ) -> list[dict[str, object]]:
    server = await make_server(turn=config)
    client = await client_factory(server)
    joined = await client.join("turn-test", "T")
    return joined["ice_servers"]


async def _allocate(coturn: Coturn, ice: dict[str, object]) -> tuple[str, int]:
    from aioice.turn import create_turn_endpoint

    transport, _ = await create_turn_endpoint(
        _Sink, ("127.0.0.1", coturn.port), str(ice["username"]), str(ice["credential"])
    )
    try:
        return transport.get_extra_info("sockname")
    finally:
        transport.close()


async def test_coturn_accepts_walkie_credentials(coturn: Coturn, make_server,
                                                 client_factory) -> None:
    config = TurnConfig((coturn.url,), coturn.secret, ttl=600)
    (ice,) = await _joined_ice_servers(make_server, client_factory, config)
    assert ice["urls"] == [coturn.url]
    expiry, _, member = str(ice["username"]).partition(":")
    assert int(expiry) - time.time() == pytest.approx(600, abs=5) and member
    relay_host, relay_port = await asyncio.wait_for(_allocate(coturn, ice), 10)
    assert relay_host == "127.0.0.1"
    assert coturn.relay_range[0] <= relay_port <= coturn.relay_range[1]


async def test_coturn_refuses_credentials_from_another_secret(coturn: Coturn, make_server,
                                                              client_factory) -> None:
    config = TurnConfig((coturn.url,), "not-" + coturn.secret)
    (ice,) = await _joined_ice_servers(make_server, client_factory, config)
    with pytest.raises(TransactionFailed) as failure:
        await asyncio.wait_for(_allocate(coturn, ice), 10)
    assert failure.value.response.attributes["ERROR-CODE"][0] == 401


async def _channel_bind(coturn: Coturn, username: str, password: str,
                        peers: list[tuple[str, int]]) -> list[int]:
    """Allocate, then ask for a channel to each peer: 0 = allowed, else coturn's error code.

    A channel binding installs a permission for the peer, which is where coturn applies
    its peer address rules (denied-peer-ip / allowed-peer-ip, loopback).
    """
    from aioice.turn import TurnClientUdpProtocol

    loop = asyncio.get_running_loop()
    server = ("127.0.0.1", coturn.port)
    transport, protocol = await loop.create_datagram_endpoint(
        lambda: TurnClientUdpProtocol(server, username=username, password=password,
                                      lifetime=600, channel_refresh_time=500),
        remote_addr=server,
    )
    results = []
    try:
        await protocol.connect()
        for number, peer in enumerate(peers, start=0x4000):
            try:
                await protocol.channel_bind(number, peer)
                results.append(0)
            except TransactionFailed as exc:
                results.append(exc.response.attributes["ERROR-CODE"][0])
    finally:
        transport.close()
    return results


async def test_sample_turnserver_conf_relays_only_to_walkie(tmp_path: Path) -> None:
    """docs/deploy/turnserver.conf as shipped, its placeholders filled in for loopback."""
    if coturn_skip_reason():
        pytest.skip(coturn_skip_reason())
    secret = secrets.token_hex(16)
    sample = (REPO / "docs" / "deploy" / "turnserver.conf").read_text()
    assert "static-auth-secret=CHANGE_ME" in sample and "allowed-peer-ip=203.0.113.10" in sample
    rendered = tmp_path / "turnserver.conf"
    rendered.write_text(
        sample.replace("CHANGE_ME", secret)
        .replace("203.0.113.10", "127.0.0.1")  # walkie's media address in this test
        .replace("\nsyslog\n", "\n")          # the log goes to the test's file instead
    )
    coturn = Coturn(tmp_path, secret, config=rendered)
    try:
        username, password = turn_credential(secret, "member01", time.time(), 600)
        walkie, elsewhere = ("127.0.0.1", 40000), ("127.0.0.2", 40000)
        assert await asyncio.wait_for(
            _channel_bind(coturn, username, password, [walkie, elsewhere]), 10) == [0, 403]
        wrong = turn_credential("not-" + secret, "member01", time.time(), 600)
        with pytest.raises(TransactionFailed):
            await asyncio.wait_for(_channel_bind(coturn, *wrong, []), 10)
    finally:
        coturn.stop()


async def test_an_open_relay_outlives_its_credential(coturn: Coturn) -> None:
    """What --turn-ttl's help promises: the expiry stops new allocations, not open ones.

    A member talking for hours keeps its relay (browsers refresh allocations every few
    minutes, with the credential they were given at join).
    """
    from aioice import stun
    from aioice.turn import TurnClientUdpProtocol

    username, password = turn_credential(coturn.secret, "long-talker", time.time(), 1)
    expiry = int(username.split(":")[0])
    loop = asyncio.get_running_loop()
    server = ("127.0.0.1", coturn.port)
    transport, protocol = await loop.create_datagram_endpoint(
        lambda: TurnClientUdpProtocol(server, username=username, password=password,
                                      lifetime=600, channel_refresh_time=500),
        remote_addr=server,
    )
    try:
        await asyncio.wait_for(protocol.connect(), 10)
        await asyncio.sleep(max(0.0, expiry + 1.2 - time.time()))  # now surely expired
        refresh = stun.Message(message_method=stun.Method.REFRESH,
                               message_class=stun.Class.REQUEST)
        refresh.attributes["LIFETIME"] = 600
        response, _ = await asyncio.wait_for(protocol.request_with_retry(refresh), 10)
        assert response.attributes["LIFETIME"] == 600
        await asyncio.wait_for(protocol.channel_bind(0x4000, ("127.0.0.1", 40000)), 10)
    finally:
        transport.close()
    # ...while the same credential can no longer open a new relay.
    with pytest.raises(TransactionFailed):
        await asyncio.wait_for(
            _allocate(coturn, {"username": username, "credential": password}), 10)


async def test_coturn_refuses_an_expired_credential(coturn: Coturn) -> None:
    username, credential = turn_credential(coturn.secret, "late", now=time.time() - 120, ttl=60)
    with pytest.raises(TransactionFailed) as failure:
        await asyncio.wait_for(
            _allocate(coturn, {"username": username, "credential": credential}), 10
        )
    assert failure.value.response.attributes["ERROR-CODE"][0] == 401
