"""``walkie token``: a ready link whose token the server accepts; bad input in one line."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from signaling.tokens import Grant, verify
from walkie import cli
from walkie.config import ConfigError, load
from walkie.tokencmd import parse_ttl

SECRET = "t" * 40


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    status = cli.main(["token", *argv])
    out, err = capsys.readouterr()
    return status, out.strip(), err.strip()


def test_the_link_carries_a_token_for_that_member(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = run(capsys, "--room", "ops", "--name", "Ann", "--ttl", "1h",
                         "--listen-only", "--priority", "5", "--url", "https://walkie.example.org",
                         "--token-secret", SECRET)
    assert status == 0
    base, _, token = out.partition("#token=")
    assert base == "https://walkie.example.org/r/ops"
    grant = verify(SECRET, token, "ops", time.time())
    assert grant == Grant("ops", "Ann", grant.expires_at, listen_only=True, priority=5)
    assert 3590 < grant.expires_at - time.time() <= 3600


def test_the_secret_comes_from_a_file_or_the_variable(
        capsys: pytest.CaptureFixture[str], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    secret_file = tmp_path / "secret"
    secret_file.write_text(SECRET + "\n")
    status, out, _ = run(capsys, "--room", "ops", "--name", "Ann",
                         "--token-secret-file", str(secret_file))
    assert status == 0 and out.startswith("http://localhost:8080/r/ops#token=")
    monkeypatch.setenv("WALKIE_TOKEN_SECRET", SECRET)
    assert run(capsys, "--room", "ops", "--name", "Bob")[0] == 0


@pytest.mark.parametrize("argv, says", [
    ([], "needs the server's --token-secret"),
    (["--token-secret", "short"], "at least 32"),
    (["--token-secret", SECRET, "--ttl", "8d"], "--ttl must be"),
    (["--token-secret", SECRET, "--ttl", "soon"], "--ttl 'soon'"),
    (["--token-secret", SECRET, "--priority", "256"], "--priority must be"),
    (["--token-secret", SECRET, "--url", "walkie.example.org"], "--url"),
])
def test_bad_input_is_one_line_and_status_2(capsys: pytest.CaptureFixture[str],
                                            monkeypatch: pytest.MonkeyPatch,
                                            argv: list[str], says: str) -> None:
    monkeypatch.delenv("WALKIE_TOKEN_SECRET", raising=False)
    status, out, err = run(capsys, "--room", "ops", "--name", "Ann", *argv)
    assert status == 2 and out == "" and says in err and len(err.splitlines()) == 1


def test_bad_room_and_name_are_refused(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(capsys, "--room", "Ops", "--name", "Ann", "--token-secret", SECRET)[0] == 2
    assert run(capsys, "--room", "ops", "--name", "", "--token-secret", SECRET)[0] == 2


def test_ttl_spellings() -> None:
    assert [parse_ttl(t) for t in ("90", "90s", "30m", "1h", "7d")] == [
        90, 90, 1800, 3600, 7 * 86400]


def test_serve_reads_and_checks_the_token_secret(tmp_path: Path) -> None:
    assert load(["--token-secret", SECRET], {}).server_config().token_secret == SECRET
    secret_file = tmp_path / "secret"
    secret_file.write_text(SECRET)
    assert load([], {"WALKIE_TOKEN_SECRET_FILE": str(secret_file)}).token_secret == SECRET
    assert SECRET not in repr(load(["--token-secret", SECRET], {}))
    with pytest.raises(ConfigError, match="at least 32"):
        load(["--token-secret", "short"], {})
    with pytest.raises(ConfigError, match="exclude each other"):
        load(["--token-secret", SECRET, "--token-secret-file", str(secret_file)], {})
