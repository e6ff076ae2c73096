"""The ``walkie`` command: help, ``serve`` start/stop, ``bench`` and its missing extra."""

from __future__ import annotations

import asyncio
import json
import re
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from walkie import cli, serve
from walkie.config import SETTINGS, load

from .serverproc import BASE_ENV, REPO, Serve, walkie


def test_python_m_walkie_help() -> None:
    result = walkie("--help")
    assert result.returncode == 0, result.stderr
    assert "serve" in result.stdout and "bench" in result.stdout


def test_serve_help_lists_every_flag_and_variable(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stopped:
        cli.main(["serve", "--help"])
    assert stopped.value.code == 0
    text = " ".join(capsys.readouterr().out.split())  # argparse wraps lines anywhere
    for s in SETTINGS:
        assert s.flag in text and s.env in text.replace("- ", "-")


def test_no_command_prints_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main([]) == 2
    assert "serve" in capsys.readouterr().out


def test_an_unknown_flag_is_refused_by_argparse(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stopped:
        cli.main(["serve", "--no-such-flag"])
    assert stopped.value.code == 2
    assert "unrecognized arguments: --no-such-flag" in capsys.readouterr().err


# -- bench ---------------------------------------------------------------------------------------

def test_bench_forwards_its_arguments(monkeypatch: pytest.MonkeyPatch) -> None:
    import bench

    got: list[list[str]] = []
    monkeypatch.setattr(bench, "main", lambda argv: got.append(argv) or 0)
    assert cli.main(["bench", "--rooms", "3", "--help"]) == 0
    assert got == [["--rooms", "3", "--help"]]


def _python(code: str, *path: Path) -> subprocess.CompletedProcess[str]:
    env = dict(BASE_ENV)
    env["PYTHONPATH"] = ":".join([*map(str, path), env["PYTHONPATH"]])
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=REPO,
                          capture_output=True, text=True, timeout=60, env=env)


def test_bench_without_the_extra_says_how_to_get_it_in_one_line() -> None:
    """The README's plain install has no opuslib: one line, exit status 2, no traceback."""
    result = _python("""
        import sys
        sys.modules["opuslib"] = None  # what `pip install .` (no bench extra) looks like
        from walkie.cli import main
        sys.exit(main(["bench", "--rooms", "1"]))
    """)
    assert result.returncode == 2
    assert result.stderr == "walkie bench: needs the bench extra: pip install 'walkie[bench]'\n"
    assert result.stdout == ""


def test_bench_without_libopus_says_so_in_one_line(tmp_path: Path) -> None:
    # opuslib installed but libopus missing: opuslib raises a bare Exception when imported.
    fake = tmp_path / "opuslib"
    fake.mkdir()
    (fake / "__init__.py").write_text(
        "raise Exception('Could not find Opus library. Make sure it is installed.')\n")
    result = _python("""
        import sys
        from walkie.cli import main
        sys.exit(main(["bench"]))
    """, tmp_path)
    assert result.returncode == 2
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and "libopus" in lines[0] and "Could not find Opus" in lines[0]


# -- serve ---------------------------------------------------------------------------------------

async def test_serve_in_process_until_stopped() -> None:
    ready, stop = asyncio.Event(), asyncio.Event()
    config = load(["--port", "0", "--udp-port", "0"], {})
    task = asyncio.create_task(serve.serve(config, ready=ready, stop=stop))
    await asyncio.wait_for(ready.wait(), 10)
    stop.set()
    await asyncio.wait_for(task, 10)


async def test_start_media_runs_media_in_one_worker_process_by_default() -> None:
    import os

    import sfu

    media = await serve.start_media(load(["--udp-port", "0"], {}))
    try:
        assert isinstance(media, sfu.WorkerPool) and media.address[0] == "127.0.0.1"
        (worker,) = media.workers
        assert worker.alive and worker.pid not in (None, os.getpid())
    finally:
        await media.close()


def test_walkie_serve_starts_prints_its_url_and_stops_on_sigterm(serve) -> None:
    server = serve("--log-level", "warning")
    first_line = server.output().splitlines()[0]
    assert re.fullmatch(r"walkie: open http://127\.0\.0\.1:\d+/ +\(media: udp "
                        r"127\.0\.0\.1:\d+, announced as 127\.0\.0\.1\)", first_line)
    assert server.healthz()["status"] == "ok"
    assert server.stop() == 0
    assert "Traceback" not in server.output()


def test_settings_come_from_the_environment_too(serve) -> None:
    server = serve(env={"WALKIE_MAX_USERS": "3", "WALKIE_LOG_LEVEL": "warning",
                        "WALKIE_ALLOWED_ORIGIN": "https://a.example"})
    server.wait_for(r"WebSockets accepted from this server's pages and from https://a\.example")
    assert server.stop() == 0


def test_walkie_serve_with_two_media_workers(serve) -> None:
    """--workers 2: two media processes on consecutive UDP ports behind one signaling server."""
    server = serve("--workers", "2", "--log-level", "warning")
    assert re.search(r"walkie: open http://127\.0\.0\.1:\d+/ +\(media: udp 127\.0\.0\.1:"
                     r"\d+,\d+ \(2 workers\)", server.output())
    assert [w["alive"] for w in server.healthz()["media"]["workers"]] == [True, True]
    assert server.stop() == 0
    assert "Traceback" not in server.output()


def test_bad_settings_stop_the_start_with_one_line() -> None:
    result = walkie("serve", "--port", "0", "--tls-key", "k.pem",
                    env={"WALKIE_WORKERS": "many"})  # values are checked before rules
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr == "walkie: WALKIE_WORKERS 'many' is not a whole number\n"


def test_port_in_use_is_a_clear_error() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("127.0.0.1", 0))
        result = walkie("serve", "--port", "0", "--udp-port", str(taken.getsockname()[1]))
    assert result.returncode == 1
    assert "cannot start" in result.stderr and "Traceback" not in result.stderr


def test_serve_prints_ice_servers_but_never_the_secret(tmp_path: Path) -> None:
    """The whole process, debug logs on, a WebSocket client joining: no trace of the secret."""
    from websockets.asyncio.client import connect

    secret = "do-not-print-this-secret-7f3a"
    server = Serve(tmp_path, "--turn-url", "turn:127.0.0.1:3478", "--force-relay",
                   "--log-level", "debug", env={"WALKIE_TURN_SECRET": secret})

    async def join() -> dict[str, object]:
        async with connect(server.url.replace("http://", "ws://") + "/ws") as ws:
            await ws.send(json.dumps({"type": "join", "room": "r", "name": "Ann"}))
            return json.loads(await ws.recv())

    try:
        joined = asyncio.run(join())
    finally:
        server.stop()
    assert joined["type"] == "joined" and joined["ice_transport_policy"] == "relay"
    assert secret not in json.dumps(joined)
    output = server.output()
    assert "ICE servers for browsers: turn:127.0.0.1:3478" in output
    assert "relay forced" in output
    assert "joined room r" in output  # the debug log did run
    assert secret not in output
