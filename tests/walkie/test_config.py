"""The settings table: every flag and variable, precedence, every refusal, the library configs.

The rows below name every setting; a setting added to ``walkie.config.Config`` without a row
here fails ``test_every_setting_has_a_row``, so its flag and variable get tested too.
"""

from __future__ import annotations

import re
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import sfu
import walkie.config
from signaling.server import ServerConfig
from signaling.turn import TurnConfig
from walkie import cli
from walkie.config import SETTINGS, Config, ConfigError, load

REPO = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Row:
    """One setting: a value given as text and what it reads as, a second value for the
    precedence test, and the other settings it cannot go without."""

    name: str
    text: str
    value: Any
    other: str                       # given to the variable while the flag gives ``text``
    other_value: Any
    context: tuple[str, ...] = ()

    def __str__(self) -> str:
        return self.name


ROWS = [
    Row("host", "127.0.0.3", "127.0.0.3", "localhost", "127.0.0.1"),
    Row("port", "9000", 9000, "9001", 9001),
    Row("udp_port", "41000", 41000, "0", 0),
    Row("udp_host", "127.0.0.3", "127.0.0.3", "localhost", "127.0.0.1"),
    Row("announced_ip", "203.0.113.7", "203.0.113.7", "198.51.100.1", "198.51.100.1"),
    Row("max_users", "4", 4, "5", 5),
    Row("max_talk_time", "0", 0.0, "30", 30.0),
    Row("no_queue", "1", True, "0", False),
    Row("no_media_timeout", "0", 0.0, "5", 5.0),
    Row("ping_interval", "0", 0.0, "10", 10.0),
    Row("ping_timeout", "4", 4.0, "5.5", 5.5),
    Row("resume_grace", "0", 0.0, "30", 30.0),
    Row("turn_url", "turn:a:3478", ("turn:a:3478",), "turn:b:1, turn:c:2",
        ("turn:b:1", "turn:c:2"), ("--turn-secret", "k")),
    Row("stun_url", "stun:a", ("stun:a",), " stun:b,,stun:c ", ("stun:b", "stun:c")),
    Row("turn_secret", "k1", "k1", "k2", "k2", ("--turn-url", "turn:a")),
    Row("turn_secret_file", "{tmp}/one", "{tmp}/one", "{tmp}/two", "{tmp}/two",
        ("--turn-url", "turn:a")),
    Row("turn_ttl", "600", 600, "900", 900),
    Row("force_relay", "1", True, "off", False, ("--turn-url", "turn:a", "--turn-secret", "k")),
    Row("tls_cert", "c.pem", "c.pem", "d.pem", "d.pem", ("--tls-key", "k.pem")),
    Row("tls_key", "k.pem", "k.pem", "l.pem", "l.pem", ("--tls-cert", "c.pem")),
    Row("self_signed", "1", True, "no", False),
    Row("cert_dir", "/tmp/x", "/tmp/x", "/tmp/y", "/tmp/y"),
    Row("allowed_origin", "https://a.example", ("https://a.example",),
        "https://b.example,http://c:8080", ("https://b.example", "http://c:8080")),
    Row("server_name", "Walkie.Example.org.", ("walkie.example.org",),
        "a.example, *.b.example", ("a.example", "*.b.example")),
    Row("workers", "4", 4, "2", 2),
    Row("uplink_packet_rate", "200", 200, "120", 120),
    Row("uplink_byte_rate", "64000", 64000, "256000", 256000),
    Row("replay", "120", 120.0, "0", 0.0),
    Row("replay_max_bytes", "65536", 65536, "2048", 2048),
    Row("max_connections", "0", 0, "100", 100),
    Row("max_connections_per_ip", "0", 0, "10", 10),
    Row("join_rate_per_ip", "0", 0.0, "0.5", 0.5),
    Row("rooms_per_ip", "0", 0, "3", 3),
    Row("message_rate_per_ip", "50", 50.0, "0", 0.0),
    Row("byte_rate_per_ip", "1000", 1000.0, "0", 0.0),
    Row("join_timeout", "0", 0.0, "2.5", 2.5),
    Row("metrics", "1", True, "0", False),
    Row("metrics_token", "t1", "t1", "t2", "t2"),
    Row("metrics_token_file", "{tmp}/one", "{tmp}/one", "{tmp}/two", "{tmp}/two"),
    Row("token_secret", "a" * 32, "a" * 32, "b" * 40, "b" * 40),
    Row("token_secret_file", "{tmp}/token-one", "{tmp}/token-one", "{tmp}/token-two",
        "{tmp}/token-two"),
    Row("webhook_url", "http://127.0.0.1:9/a", ("http://127.0.0.1:9/a",),
        "https://hooks.example.org/w,http://127.0.0.1:9/b",
        ("https://hooks.example.org/w", "http://127.0.0.1:9/b"), ("--webhook-secret", "w")),
    Row("webhook_secret", "w1", "w1", "w2", "w2", ("--webhook-url", "http://127.0.0.1:9/")),
    Row("webhook_secret_file", "{tmp}/one", "{tmp}/one", "{tmp}/two", "{tmp}/two",
        ("--webhook-url", "http://127.0.0.1:9/")),
    Row("record", "/srv/rec", "/srv/rec", "/var/rec", "/var/rec"),
    Row("record_keep_days", "0", 0.0, "7.5", 7.5),
    Row("log_level", "debug", "debug", "WARNING", "warning"),
    Row("log_format", "json", "json", "TEXT", "text"),
    Row("redis", "redis://127.0.0.1:6390/0", "redis://127.0.0.1:6390/0",
        "rediss://:pw@redis.example:6380", "rediss://:pw@redis.example:6380",
        ("--secret", "s" * 16)),
    Row("node_id", "node-a", "node-a", "b_2", "b_2"),
    Row("redis_prefix", "w1:", "w1:", "walkie-test.", "walkie-test."),
    Row("heartbeat", "0.25", 0.25, "1", 1.0, ("--node-ttl", "5")),
    Row("node_ttl", "3", 3.0, "10", 10.0),
    Row("drain_timeout", "0", 0.0, "30", 30.0),
    Row("advertise_url", "https://a.example.org", "https://a.example.org",
        "http://10.0.0.2:8080", "http://10.0.0.2:8080"),
    Row("room_capacity", "50", 50, "7", 7),
    Row("secret", "s" * 16, "s" * 16, "t" * 20, "t" * 20),
    Row("secret_file", "{tmp}/shared-one", "{tmp}/shared-one", "{tmp}/shared-two",
        "{tmp}/shared-two"),
]
SPEC = {s.name: s for s in SETTINGS}


@pytest.fixture
def tmp(tmp_path: Path) -> Path:
    (tmp_path / "one").write_text("secret-one\n")  # `echo secret > file`: the newline goes
    (tmp_path / "two").write_text("secret-two")
    (tmp_path / "token-one").write_text("token-secret-one-" + "x" * 32 + "\n")  # >= 32 chars
    (tmp_path / "token-two").write_text("token-secret-two-" + "y" * 32)
    (tmp_path / "shared-one").write_text("a shared secret, one\n")
    (tmp_path / "shared-two").write_text("a shared secret, two")
    return tmp_path


def _fill(value: Any, tmp: Path) -> Any:
    return value.replace("{tmp}", str(tmp)) if isinstance(value, str) else value


def _flag(row: Row, tmp: Path) -> list[str]:
    spec = SPEC[row.name]
    return [spec.flag] if spec.parse is None else [spec.flag, _fill(row.text, tmp)]


def test_every_setting_has_a_row() -> None:
    assert [r.name for r in ROWS] == [s.name for s in SETTINGS]


@pytest.mark.parametrize("row", ROWS, ids=str)
def test_flag(row: Row, tmp: Path) -> None:
    config = load([*row.context, *_flag(row, tmp)], {})
    assert getattr(config, row.name) == _fill(row.value, tmp)


@pytest.mark.parametrize("row", ROWS, ids=str)
def test_variable(row: Row, tmp: Path) -> None:
    config = load([*row.context], {SPEC[row.name].env: _fill(row.text, tmp)})
    assert getattr(config, row.name) == _fill(row.value, tmp)
    config = load([*row.context], {SPEC[row.name].env: _fill(row.other, tmp)})
    assert getattr(config, row.name) == _fill(row.other_value, tmp)


@pytest.mark.parametrize("row", ROWS, ids=str)
def test_a_flag_beats_its_variable(row: Row, tmp: Path) -> None:
    environ = {SPEC[row.name].env: _fill(row.other, tmp)}
    config = load([*row.context, *_flag(row, tmp)], environ)
    assert getattr(config, row.name) == _fill(row.value, tmp)


def test_an_empty_variable_is_unset() -> None:
    assert load([], {s.env: "" for s in SETTINGS}) == load([], {})


def test_names_flags_and_variables_follow_one_rule() -> None:
    for s in SETTINGS:
        assert s.flag == "--" + s.name.replace("_", "-")
        assert s.env == "WALKIE_" + s.name.upper()
    assert load(["--cert", "c.pem", "--key", "k.pem"], {}).tls_cert == "c.pem"


def test_defaults_are_the_libraries_defaults() -> None:
    config = load([], {})
    server, router = ServerConfig(), sfu.RouterConfig()
    assert config == Config()
    assert (config.host, config.port, config.max_users) == (server.host, server.port,
                                                           server.max_users)
    assert config.max_talk_time == server.max_talk_time
    assert config.max_connections_per_ip == server.max_connections_per_ip
    assert config.server_config().budgets == server.budgets  # the bursts follow the rates
    assert (config.no_media_timeout, config.ping_interval, config.ping_timeout) == (
        server.no_media_timeout, server.ping_interval, server.ping_timeout)
    assert config.udp_port == router.port and config.media_host == router.host
    assert (config.uplink_packet_rate, config.uplink_byte_rate) == (
        router.uplink_packets_per_second, router.uplink_bytes_per_second)
    assert config.turn_ttl == TurnConfig(()).ttl
    assert (config.workers, config.log_level, config.no_queue) == (1, "info", False)


def test_the_library_configs_are_built_from_the_settings(tmp: Path) -> None:
    config = load(["--host", "127.0.0.3", "--port", "0", "--max-talk-time", "0", "--no-queue",
                   "--turn-url", "turn:T.example", "--stun-url", "stun:s.example",
                   "--turn-secret-file", str(tmp / "one"), "--force-relay",
                   "--allowed-origin", "https://a.example", "--max-connections-per-ip", "3",
                   "--udp-port", "0", "--announced-ip", "203.0.113.7",
                   "--uplink-packet-rate", "120", "--uplink-byte-rate", "96000",
                   "--server-name", "walkie.example.org",
                   "--no-media-timeout", "0", "--ping-interval", "0"], {})
    server = config.server_config(certificate_names=("cert.example",))
    assert server.server_names == ("walkie.example.org", "cert.example")
    assert (server.no_media_timeout, server.ping_interval) == (None, None)
    assert load(["--no-media-timeout", "2.5", "--ping-timeout", "4"], {}).server_config(
    ).no_media_timeout == 2.5
    assert (server.host, server.port, server.max_talk_time, server.queue) == (
        "127.0.0.3", 0, None, False)
    assert server.force_relay and server.allowed_origins == ("https://a.example",)
    assert server.max_connections_per_ip == 3 and server.ssl is None
    assert server.turn == TurnConfig(("stun:s.example", "turn:t.example"), "secret-one", 3600)
    assert config.router_config() == sfu.RouterConfig(
        host="127.0.0.3", port=0, announced_ip="203.0.113.7",
        uplink_packets_per_second=120, uplink_bytes_per_second=96000)
    assert load([], {}).turn_config() is None


def test_the_secret_is_in_no_repr(tmp: Path) -> None:
    config = load(["--turn-url", "turn:a", "--turn-secret-file", str(tmp / "one")], {})
    assert config.turn_secret == "secret-one"
    assert "secret-one" not in repr(config) and "secret-one" not in repr(config.turn_config())


def test_the_cluster_settings_keep_their_secrets(tmp: Path) -> None:
    url = "redis://:hunter2@redis.example:6379/0"
    config = load(["--redis", url, "--secret-file", str(tmp / "shared-one")], {})
    assert config.redis == url and config.secret == "a shared secret, one"
    assert config.room_secret == b"a shared secret, one"
    assert "hunter2" not in repr(config) and "shared secret" not in repr(config)
    assert load([], {}).room_secret is None  # one node: a random secret per process
    with pytest.raises(ConfigError) as caught:
        load(["--redis", "redis://:hunter2@redis.example:http"], {})
    assert "hunter2" not in str(caught.value)


def test_room_capacity_follows_the_workers() -> None:
    config = load([], {})
    assert (config.redis, config.node_id, config.redis_prefix) == (None, None, "walkie:")
    assert (config.heartbeat, config.node_ttl, config.drain_timeout) == (0.5, 2.0, 60.0)
    assert config.rooms_capacity == walkie.config.ROOMS_PER_WORKER
    assert load(["--workers", "3"], {}).rooms_capacity == 3 * walkie.config.ROOMS_PER_WORKER
    assert load(["--workers", "3", "--room-capacity", "10"], {}).rooms_capacity == 10


def test_a_wildcard_media_address_announces_the_primary_address(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(walkie.config, "primary_address", lambda: "192.0.2.5")
    config = load(["--host", "0.0.0.0"], {})
    assert config.media_host == "0.0.0.0" and config.announced_ip == "192.0.2.5"
    assert load(["--host", "0.0.0.0", "--announced-ip", "203.0.113.7"],
                {}).announced_ip == "203.0.113.7"
    monkeypatch.setattr(walkie.config, "primary_address", lambda: None)
    with pytest.raises(ConfigError, match=r"^--udp-host 0\.0\.0\.0 needs --announced-ip: "):
        load(["--udp-host", "0.0.0.0"], {})


REFUSED = [
    # each value on its own, named as it was given
    (["--port", "70000"], {}, "--port 70000 is out of range"),
    (["--port", "eighty"], {}, "--port 'eighty' is not a whole number"),
    ([], {"WALKIE_PORT": "70000"}, "WALKIE_PORT 70000 is out of range"),
    (["--udp-port", "-1"], {}, "--udp-port -1 is out of range"),
    (["--max-users", "0"], {}, "--max-users 0 is out of range"),
    (["--max-talk-time", "-1"], {}, "--max-talk-time must be >= 0"),
    (["--max-talk-time", "nan"], {}, "--max-talk-time 'nan' is not a number of seconds"),
    ([], {"WALKIE_MAX_TALK_TIME": "soon"}, "WALKIE_MAX_TALK_TIME 'soon' is not a number of "
                                           "seconds"),
    (["--host", " "], {}, "--host must not be empty"),
    (["--announced-ip", "walkie.example.org"], {},
     "--announced-ip 'walkie.example.org' is not an IP address"),
    (["--turn-url", "turn://t.example", "--turn-secret", "k"], {},
     "--turn-url 'turn://t.example': write turn:host:port (no '//')"),
    ([], {"WALKIE_STUN_URL": "stun:a, http://b"},
     "WALKIE_STUN_URL 'http://b': the URL must start with stun:, stuns:, turn: or turns:"),
    (["--allowed-origin", "intranet.example.org"], {},
     "--allowed-origin 'intranet.example.org' is not an origin: it must start with http:// "
     "or https://"),
    (["--server-name", "https://walkie.example.org"], {},
     "--server-name 'https://walkie.example.org' is not a host name (write the name only, "
     "e.g. walkie.example.org or *.example.org: no scheme, port or path)"),
    ([], {"WALKIE_SERVER_NAME": "walkie.example.org:443"},
     "WALKIE_SERVER_NAME 'walkie.example.org:443' is not a host name (write the name only, "
     "e.g. walkie.example.org or *.example.org: no scheme, port or path)"),
    (["--turn-url", "turn:t", "--turn-secret", "k", "--turn-ttl", "10"], {},
     "--turn-ttl must be 60..604800 seconds"),
    (["--turn-url", "turn:t", "--turn-secret", "k", "--turn-ttl", "9999999"], {},
     "--turn-ttl must be 60..604800 seconds"),
    (["--workers", "0"], {}, "--workers must be 1..256"),
    (["--workers", "257"], {}, "--workers must be 1..256"),
    (["--max-connections-per-ip", "-1"], {},
     "--max-connections-per-ip must be 0 (unlimited) or more"),
    (["--join-rate-per-ip", "-1"], {}, "--join-rate-per-ip must be a number >= 0"),
    ([], {"WALKIE_BYTE_RATE_PER_IP": "nan"}, "WALKIE_BYTE_RATE_PER_IP must be a number >= 0"),
    (["--log-level", "loud"], {}, "--log-level 'loud' is not one of debug, info, warning, error"),
    ([], {"WALKIE_NO_QUEUE": "maybe"},
     "WALKIE_NO_QUEUE 'maybe' is neither 1/true/yes/on nor 0/false/no/off"),
    # rules between settings
    (["--tls-cert", "c.pem"], {},
     "--tls-cert and --tls-key go together (also spelled --cert and --key)"),
    (["--key", "k.pem"], {},
     "--tls-cert and --tls-key go together (also spelled --cert and --key)"),
    (["--self-signed", "--cert", "c.pem", "--key", "k.pem"], {},
     "--self-signed and --cert/--key exclude each other"),
    (["--stun-url", "turn:t.example", "--turn-secret", "k"], {},
     "--stun-url takes stun: URLs; give turn: URLs to --turn-url"),
    (["--turn-url", "turn:t", "--turn-secret", "k", "--turn-secret-file", "/nonexistent"], {},
     "--turn-secret and --turn-secret-file exclude each other"),
    (["--turn-url", "turn:t", "--turn-secret-file", "/nonexistent/secret"], {},
     "cannot read --turn-secret-file: No such file or directory"),
    (["--turn-url", "turn:t", "--turn-secret-file", "{tmp}/empty"], {},
     "--turn-secret-file is empty"),
    (["--turn-secret", "k"], {}, "--turn-secret needs at least one --turn-url"),
    (["--force-relay"], {}, "--force-relay needs a turn: URL in --turn-url (and --turn-secret)"),
    (["--force-relay", "--stun-url", "stun:t"], {},
     "--force-relay needs a turn: URL in --turn-url (and --turn-secret)"),
    (["--workers", "2", "--udp-port", "65535"], {},
     "--udp-port 65535 leaves no room for 2 workers"),
    (["--no-media-timeout", "0.5"], {},
     "--no-media-timeout must be 0 (never) or at least 1 second: the media plane reports a "
     "holder silent after 1 s without audio"),
    (["--ping-timeout", "0"], {}, "--ping-timeout must be above 0 while --ping-interval is on"),
    (["--redis", "http://redis.example:6379"], {},
     "--redis must start with redis:// or rediss:// (TLS)"),
    (["--redis", "redis://:hunter2@redis.example:99999"], {},
     "--redis is not a URL: write redis://[:password@]host[:port][/db]"),
    ([], {"WALKIE_REDIS": "redis://:hunter2@"},
     "WALKIE_REDIS names no host: write redis://[:password@]host[:port][/db]"),
    (["--redis", "redis://:hunter2@redis.example/zero"], {},
     "--redis is not redis://[:password@]host[:port][/db] (db: a number)"),
    (["--node-id", "Node A"], {}, "--node-id 'Node A' is not a node id: 1-64 characters of "
                                  "a-z, 0-9, '-' and '_', starting with a letter or digit"),
    (["--redis-prefix", "a b"], {}, "--redis-prefix 'a b' is not a key prefix: 1-64 "
                                    "characters of A-Z, a-z, 0-9, '_', '.', ':' and '-'"),
    (["--heartbeat", "0"], {}, "--heartbeat must be 0.05..60 seconds"),
    ([], {"WALKIE_NODE_TTL": "1000"}, "WALKIE_NODE_TTL must be 0.1..600 seconds"),
    (["--advertise-url", "ftp://a.example"], {},
     "--advertise-url 'ftp://a.example' is not an http:// or https:// URL"),
    (["--room-capacity", "0"], {}, "--room-capacity must be 1..1000000"),
    # rules between the cluster settings
    (["--redis", "redis://:hunter2@redis.example"], {},
     "--redis needs --secret or --secret-file: every node of a cluster must derive the same "
     "room password keys"),
    (["--secret", "short"], {},
     "--secret must be at least 16 characters (e.g. the output of `openssl rand -hex 32`)"),
    (["--secret", "s" * 16, "--secret-file", "/nonexistent"], {},
     "--secret and --secret-file exclude each other"),
    (["--secret-file", "/nonexistent/secret"], {},
     "cannot read --secret-file: No such file or directory"),
    (["--secret-file", "{tmp}/empty"], {}, "--secret-file is empty"),
    (["--heartbeat", "2"], {}, "--node-ttl must be at least twice --heartbeat: one late "
                               "heartbeat must not make a live node look dead"),
    # the libraries' own checks
    (["--turn-url", "turn:t.example:3478"], {},
     "turn:/turns: URLs need the TURN secret: browsers refuse a TURN server without credentials"),
    (["--announced-ip", "0.0.0.0"], {},
     "cannot announce 0.0.0.0: set announced_ip when binding a wildcard address"),
]


@pytest.mark.parametrize(("argv", "environ", "message"), REFUSED,
                         ids=[m[:40] for _, _, m in REFUSED])
def test_refusals_name_the_setting_in_one_line(argv: list[str], environ: dict[str, str],
                                               message: str, tmp: Path) -> None:
    (tmp / "empty").write_text("\n")
    with pytest.raises(ConfigError) as caught:
        load([_fill(a, tmp) for a in argv], environ)
    assert str(caught.value) == message


def test_main_refuses_before_anything_starts(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("127.0.0.1", 0))
        # Had the media plane started, this would be "cannot start" (exit status 1).
        argv = ["serve", "--port", "0", "--udp-port", str(taken.getsockname()[1])]
        assert cli.main([*argv, "--max-users", "0"]) == 2
    assert capsys.readouterr().err == "walkie: --max-users 0 is out of range\n"


def test_readme_lists_every_setting_with_its_default() -> None:
    readme = (REPO / "README.md").read_text()
    section = readme.split("## `walkie serve`", 1)[1].split("\n## ", 1)[0]
    rows = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 3 and cells[0].startswith("`--"):
            for flag in re.findall(r"`(--[a-z-]+)`", cells[0]):
                rows[flag] = cells[1]
    for s in SETTINGS:
        assert s.flag in rows, f"README.md's flags table has no {s.flag}"
        if s.shown_default is None and s.default_text is not None:
            assert f"`{s.default_text}`" in rows[s.flag], (s.flag, rows[s.flag])


def test_sample_walkie_env_is_accepted(monkeypatch: pytest.MonkeyPatch) -> None:
    """docs/deploy/walkie.env, as shipped (plus the commented lines), is valid for serve."""
    sample = (REPO / "docs" / "deploy" / "walkie.env").read_text()
    environ = {}
    for line in sample.splitlines():
        line = line.lstrip("#")
        if re.fullmatch(r"WALKIE_[A-Z_]+=\S*", line):
            name, _, value = line.partition("=")
            environ[name] = value
    assert {"WALKIE_TURN_URL", "WALKIE_TURN_SECRET", "WALKIE_FORCE_RELAY",
            "WALKIE_ANNOUNCED_IP", "WALKIE_ALLOWED_ORIGIN", "WALKIE_TLS_CERT"} <= environ.keys()
    assert environ.keys() <= {s.env for s in SETTINGS}
    config = load([], environ)
    assert config.host == "0.0.0.0" and config.port == 443 and config.udp_port == 40000
    assert config.tls_cert == "/etc/walkie/tls/fullchain.pem"
    assert config.turn_url == ("turn:walkie.example.org:3478?transport=udp",
                               "turn:walkie.example.org:3478?transport=tcp",
                               "turns:walkie.example.org:5349?transport=tcp")
    assert config.force_relay and config.announced_ip == "203.0.113.10"
    turn = config.turn_config()
    assert turn is not None and turn.has_turn


def test_a_metrics_token_turns_metrics_on_and_reaches_the_server(tmp: Path) -> None:
    assert load([], {}).server_config().metrics is False
    server = load(["--metrics-token-file", f"{tmp}/one"], {}).server_config()
    assert server.metrics is True and server.metrics_token == (tmp / "one").read_text().strip()
    assert load(["--metrics"], {}).server_config().metrics_token is None
    with pytest.raises(ConfigError, match="exclude each other"):
        load(["--metrics-token", "x", "--metrics-token-file", f"{tmp}/one"], {})


def test_webhooks_need_a_secret_and_a_secret_needs_webhooks(tmp: Path) -> None:
    server = load(["--webhook-url", "http://127.0.0.1:9/", "--webhook-secret-file",
                   f"{tmp}/one"], {}).server_config()
    assert server.webhook_urls == ("http://127.0.0.1:9/",)
    assert server.webhook_secret == "secret-one" and "secret-one" not in repr(server)
    with pytest.raises(ConfigError, match="needs --webhook-secret"):
        load(["--webhook-url", "http://127.0.0.1:9/"], {})
    with pytest.raises(ConfigError, match="needs at least one --webhook-url"):
        load(["--webhook-secret", "w"], {})
    with pytest.raises(ConfigError, match="--webhook-url 'ftp://x/' is not an http"):
        load(["--webhook-url", "ftp://x/", "--webhook-secret", "w"], {})


def test_recording_is_off_unless_asked_and_reaches_both_libraries() -> None:
    """Issue 12: no audio is kept without --record; with it the media workers keep each
    turn (and send it to signaling) and signaling writes it (signaling/recorder.py)."""
    off = load([], {})
    assert off.router_config().capture_seconds == 0 and not off.router_config().record
    assert off.server_config().record_dir is None
    on = load(["--record", "/srv/rec", "--record-keep-days", "7"], {})
    router, server = on.router_config(), on.server_config()
    assert router.record and router.capture_seconds > 0
    assert (server.record_dir, server.record_keep_days) == (Path("/srv/rec"), 7.0)
    with pytest.raises(ConfigError, match="--record-keep-days must be a number of days >= 0"):
        load(["--record-keep-days", "-1"], {})
    with pytest.raises(ValueError, match="record needs capture_seconds"):
        sfu.RouterConfig(record=True)
