"""``walkie``: flags, environment variables, ``serve`` start/stop, ``bench`` forwarding."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from signaling import cli

REPO = Path(__file__).resolve().parents[2]


def settings(*argv: str) -> dict[str, object]:
    args = cli.build_parser().parse_args(["serve", *argv])
    return cli._settings(args)


def test_defaults() -> None:
    s = settings()
    assert s["host"] == "127.0.0.1" and s["port"] == 8080
    assert s["udp_host"] == "127.0.0.1" and s["udp_port"] == 40000
    assert s["announced_ip"] is None
    assert s["max_users"] == 15 and s["max_talk_time"] == 60.0 and s["queue"] is True


def test_flags() -> None:
    s = settings("--host", "0.0.0.0", "--port", "0", "--udp-port", "0", "--announced-ip",
                 "203.0.113.7", "--max-users", "4", "--max-talk-time", "0", "--no-queue",
                 "--turn-url", "turn:a:3478", "--turn-url", "turn:b:3478", "--turn-secret", "k")
    assert s["host"] == "0.0.0.0" and s["udp_host"] == "0.0.0.0"
    assert s["announced_ip"] == "203.0.113.7"
    assert s["max_users"] == 4 and s["max_talk_time"] is None and s["queue"] is False
    assert s["turn_urls"] == ("turn:a:3478", "turn:b:3478") and s["turn_secret"] == "k"


def test_environment_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WALKIE_PORT", "9000")
    monkeypatch.setenv("WALKIE_UDP_HOST", "127.0.0.3")
    monkeypatch.setenv("WALKIE_NO_QUEUE", "1")
    monkeypatch.setenv("WALKIE_MAX_TALK_TIME", "30")
    monkeypatch.setenv("WALKIE_TURN_URL", "turn:a:1, turn:b:2")
    s = settings()
    assert s["port"] == 9000 and s["udp_host"] == "127.0.0.3"
    assert s["queue"] is False and s["max_talk_time"] == 30.0
    assert s["turn_urls"] == ("turn:a:1", "turn:b:2")
    assert settings("--port", "9001")["port"] == 9001  # a flag beats its variable


@pytest.mark.parametrize(
    "argv",
    [
        ["--tls-cert", "c.pem"],
        ["--max-talk-time", "-1"],
        ["--max-users", "0"],
        ["--port", "70000"],
    ],
)
def test_contradictions_are_refused(argv: list[str]) -> None:
    with pytest.raises(ValueError):
        settings(*argv)


def test_main_reports_bad_settings(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["serve", "--tls-key", "k.pem"]) == 2
    assert "--tls-cert and --tls-key go together" in capsys.readouterr().err


def test_no_command_prints_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main([]) == 2
    assert "serve" in capsys.readouterr().out


def test_bench_forwards_its_arguments(monkeypatch: pytest.MonkeyPatch) -> None:
    import bench

    got: list[list[str]] = []
    monkeypatch.setattr(bench, "main", lambda argv: got.append(argv) or 0, raising=False)
    assert cli.main(["bench", "--rooms", "3", "--help"]) == 0
    assert got == [["--rooms", "3", "--help"]]


def test_bench_missing_is_explained(monkeypatch: pytest.MonkeyPatch,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    import bench

    monkeypatch.delattr(bench, "main", raising=False)
    assert cli.main(["bench"]) == 2
    assert "bench" in capsys.readouterr().err


async def test_serve_in_process_until_stopped() -> None:
    ready, stop = asyncio.Event(), asyncio.Event()
    task = asyncio.create_task(cli.serve(port=0, udp_port=0, ready=ready, stop=stop))
    await asyncio.wait_for(ready.wait(), 10)
    stop.set()
    await asyncio.wait_for(task, 10)


def test_walkie_serve_subprocess_starts_prints_url_and_stops_on_sigterm() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-u", "-m", "signaling", "serve", "--port", "0", "--udp-port", "0",
         "--log-level", "warning"],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        match = re.search(r"walkie: open (http://127\.0\.0\.1:\d+)/ +\(media: udp 127\.0\.0\.1:\d+", line)
        assert match, line
        with urllib.request.urlopen(match.group(1) + "/healthz", timeout=5) as response:
            assert json.loads(response.read())["status"] == "ok"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
        assert "Traceback" not in (proc.stderr.read() if proc.stderr else "")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_port_in_use_is_a_clear_error() -> None:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("127.0.0.1", 0))
        port = taken.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "signaling", "serve", "--port", "0", "--udp-port", str(port)],
            cwd=REPO, capture_output=True, text=True, timeout=20,
            env={**os.environ, "PYTHONPATH": str(REPO)},
        )
    assert result.returncode == 1
    assert "cannot start" in result.stderr and "Traceback" not in result.stderr


def _self_signed(tmp_path: Path) -> tuple[Path, Path]:
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(key.public_key()).serial_number(1)
        .not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


def test_serve_over_tls(tmp_path: Path) -> None:
    import ssl

    cert, key = _self_signed(tmp_path)
    proc = subprocess.Popen(
        [sys.executable, "-u", "-m", "signaling", "serve", "--port", "0", "--udp-port", "0",
         "--tls-cert", str(cert), "--tls-key", str(key), "--log-level", "warning"],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        match = re.search(r"open (https://127\.0\.0\.1:\d+)/", line)
        assert match, line
        context = ssl.create_default_context(cafile=str(cert))
        context.check_hostname = False
        with urllib.request.urlopen(match.group(1) + "/healthz", timeout=5,
                                    context=context) as response:
            assert json.loads(response.read())["status"] == "ok"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_walkie_serve_with_two_media_workers() -> None:
    """--workers 2: two media processes on consecutive UDP ports behind one signaling server."""
    proc = subprocess.Popen(
        [sys.executable, "-u", "-m", "signaling", "serve", "--port", "0", "--udp-port", "0",
         "--workers", "2", "--log-level", "warning"],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        match = re.search(r"walkie: open (http://127\.0\.0\.1:\d+)/ +\(media: udp 127\.0\.0\.1:"
                          r"\d+,\d+ \(2 workers\)", line)
        assert match, line
        with urllib.request.urlopen(match.group(1) + "/healthz", timeout=5) as response:
            media = json.loads(response.read())["media"]
        assert [w["alive"] for w in media["workers"]] == [True, True]
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0
        assert "Traceback" not in (proc.stderr.read() if proc.stderr else "")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_workers_setting() -> None:
    assert settings()["workers"] == 1
    assert settings("--workers", "4")["workers"] == 4
    for bad in (["--workers", "0"], ["--workers", "2", "--udp-port", "65535"]):
        with pytest.raises(ValueError):
            settings(*bad)
