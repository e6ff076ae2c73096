"""Tests for sfu.ice: the ICE-lite responder, driven with checks built as a browser builds them."""

from __future__ import annotations

import asyncio
import struct

import aioice
import aioice.ice
import pytest
from aioice import stun
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sfu.demux import Kind, classify
from sfu.ice import (
    CheckResult,
    IceLiteSession,
    StunError,
    binding_username,
    credential_problem,
    generate_pwd,
    generate_ufrag,
)

LOCAL_UFRAG = "SfUu"
LOCAL_PWD = "sfuPassword0123456789+/x"
REMOTE_UFRAG = "BrWs"
REMOTE_PWD = "browserPassword0123abcdef"
ADDR = ("192.0.2.10", 50000)
OTHER = ("198.51.100.7", 61000)


def session(**kw: object) -> IceLiteSession:
    args: dict[str, object] = {"local_ufrag": LOCAL_UFRAG, "local_pwd": LOCAL_PWD}
    args.update(kw)
    return IceLiteSession(REMOTE_UFRAG, REMOTE_PWD, **args)  # type: ignore[arg-type]


def request_message(
    *,
    username: str = f"{LOCAL_UFRAG}:{REMOTE_UFRAG}",
    use_candidate: bool = False,
    controlled: bool = False,
    tie_breaker: int = 0x1234_5678_9ABC_DEF0,
    priority: int | None = 1853824767,
    message_class: stun.Class = stun.Class.REQUEST,
    method: stun.Method = stun.Method.BINDING,
) -> stun.Message:
    """Attributes in the order Chrome sends them (minus its Google extensions)."""
    msg = stun.Message(message_method=method, message_class=message_class)
    msg.attributes["USERNAME"] = username
    if controlled:
        msg.attributes["ICE-CONTROLLED"] = tie_breaker
    else:
        msg.attributes["ICE-CONTROLLING"] = tie_breaker
    if use_candidate:
        msg.attributes["USE-CANDIDATE"] = None
    if priority is not None:
        msg.attributes["PRIORITY"] = priority
    return msg


def signed(msg: stun.Message, pwd: str = LOCAL_PWD) -> bytes:
    msg.add_message_integrity(pwd.encode())  # adds FINGERPRINT too, as browsers do
    return bytes(msg)


def check(**kw: object) -> bytes:
    return signed(request_message(**kw))  # type: ignore[arg-type]


def raw_signed(body: bytes, pwd: str = LOCAL_PWD, txid: bytes = b"T" * 12) -> bytes:
    """A Binding request with raw attribute bytes (for attributes aioice cannot encode)."""
    data = struct.pack("!HHI12s", 0x0001, len(body), stun.COOKIE, txid) + body
    mac = stun.message_integrity(data, pwd.encode())
    data = stun.set_body_length(data, len(body) + 24) + struct.pack("!HH", 8, 20) + mac
    crc = stun.message_fingerprint(data)
    return stun.set_body_length(data, len(body) + 32) + struct.pack("!HHI", 0x8028, 4, crc)


def tlv(atype: int, value: bytes) -> bytes:
    return struct.pack("!HH", atype, len(value)) + value + bytes(-len(value) & 3)


def browser_body(extra: bytes = b"") -> bytes:
    return (
        tlv(0x0006, f"{LOCAL_UFRAG}:{REMOTE_UFRAG}".encode())
        + tlv(0x802A, struct.pack("!Q", 7))
        + tlv(0x0024, struct.pack("!I", 1853824767))
        + extra
    )


def verified_response(result: CheckResult, request: bytes) -> stun.Message:
    """Parse our answer as the browser would, checking FINGERPRINT and integrity."""
    assert result.response[-8:-4] == b"\x80\x28\x00\x04"  # FINGERPRINT last
    resp = stun.parse_message(result.response)  # raises on a bad FINGERPRINT
    assert resp.message_method == stun.Method.BINDING
    assert resp.transaction_id == stun.parse_message(request).transaction_id
    assert resp.check_message_integrity(LOCAL_PWD.encode())
    assert not resp.check_message_integrity(REMOTE_PWD.encode())
    return resp


# --- valid checks -----------------------------------------------------------------------


def test_valid_check_is_answered_with_signed_xor_mapped_address() -> None:
    s = session()
    req = check()
    result = s.handle(req, ADDR, now=5.0)
    resp = verified_response(result, req)
    assert resp.message_class == stun.Class.RESPONSE
    assert resp.attributes["XOR-MAPPED-ADDRESS"] == ADDR
    assert result.address_changed and not result.nominated
    assert s.address == ADDR
    assert s.last_valid_check == 5.0


def test_ipv6_address_is_mapped_and_scope_fields_dropped() -> None:
    s = session()
    req = check(use_candidate=True)
    result = s.handle(req, ("2001:db8::1", 4000, 0, 0), now=1.0)  # type: ignore[arg-type]
    resp = verified_response(result, req)
    assert resp.attributes["XOR-MAPPED-ADDRESS"] == ("2001:db8::1", 4000)
    assert s.address == ("2001:db8::1", 4000)


def test_google_extension_attributes_are_ignored() -> None:
    # Chrome adds comprehension-optional attributes such as GOOG-NETWORK-INFO (0xC057).
    s = session()
    req = raw_signed(browser_body(tlv(0xC057, b"\x00\x01\x00\x0a")))
    resp = verified_response(s.handle(req, ADDR, 1.0), req)
    assert resp.message_class == stun.Class.RESPONSE
    assert s.address == ADDR


def test_unknown_comprehension_required_attribute_gets_signed_420() -> None:
    s = session()
    req = raw_signed(browser_body(tlv(0x0077, b"abc")))
    result = s.handle(req, ADDR, 1.0)
    resp = verified_response(result, req)
    assert resp.message_class == stun.Class.ERROR
    assert resp.error_code == 420
    # UNKNOWN-ATTRIBUTES (0x000A) lists the type; aioice does not decode it, so look raw.
    assert tlv(0x000A, b"\x00\x77") in result.response
    assert s.address is None and s.last_valid_check is None
    assert not result.address_changed and not result.nominated


def test_retransmitted_request_gets_the_same_answer() -> None:
    s = session()
    req = check()
    assert s.handle(req, ADDR, 1.0).response == s.handle(req, ADDR, 1.5).response


def test_tie_breaker_extremes_with_controlling_are_fine() -> None:
    for tb in (0, 2**64 - 1):
        s = session()
        result = s.handle(check(tie_breaker=tb), ADDR, 0.0)
        assert stun.parse_message(result.response).message_class == stun.Class.RESPONSE


# --- invalid checks ---------------------------------------------------------------------


def strip_fingerprint(msg: stun.Message) -> bytes:
    msg.add_message_integrity(LOCAL_PWD.encode())
    del msg.attributes["FINGERPRINT"]
    return bytes(msg)


def no_integrity(msg: stun.Message) -> bytes:
    msg.add_fingerprint()
    return bytes(msg)


def after_integrity(extra: bytes) -> bytes:
    """A signed check (minus PRIORITY) with `extra` between MESSAGE-INTEGRITY and FINGERPRINT."""
    msg = request_message(priority=None) if b"\x00\x24" == extra[:2] else request_message()
    msg.add_message_integrity(LOCAL_PWD.encode())
    del msg.attributes["FINGERPRINT"]
    body = bytes(msg) + extra
    body = stun.set_body_length(body, len(body) - 20)
    return stun.set_body_length(body, len(body) - 20 + 8) + struct.pack(
        "!HHI", 0x8028, 4, stun.message_fingerprint(body)
    )


def corrupt_fingerprint(data: bytes) -> bytes:
    return data[:-1] + bytes([data[-1] ^ 0x01])


def corrupt_integrity(data: bytes) -> bytes:
    """Flip a MAC bit and fix FINGERPRINT so that only integrity is wrong."""
    mi = data.index(b"\x00\x08\x00\x14") + 4
    body = data[:mi] + bytes([data[mi] ^ 0x80]) + data[mi + 1 : -8]
    return body + struct.pack("!HHI", 0x8028, 4, stun.message_fingerprint(body))


INVALID = {
    "wrong pwd": lambda: signed(request_message(), pwd=REMOTE_PWD),
    "wrong local ufrag": lambda: check(username=f"XXXX:{REMOTE_UFRAG}"),
    "wrong remote ufrag": lambda: check(username=f"{LOCAL_UFRAG}:XXXX"),
    "swapped ufrags": lambda: check(username=f"{REMOTE_UFRAG}:{LOCAL_UFRAG}"),
    "missing fingerprint": lambda: strip_fingerprint(request_message()),
    "corrupted fingerprint": lambda: corrupt_fingerprint(check()),
    "missing integrity": lambda: no_integrity(request_message()),
    "corrupted integrity": lambda: corrupt_integrity(check()),
    "missing priority": lambda: check(priority=None),
    "success response": lambda: check(message_class=stun.Class.RESPONSE),
    "error response": lambda: check(message_class=stun.Class.ERROR),
    "indication": lambda: check(message_class=stun.Class.INDICATION),
    "allocate request": lambda: check(method=stun.Method.ALLOCATE),
    "trailing byte": lambda: check() + b"\x00",
    "truncated": lambda: check()[:-4],
    "attribute after fingerprint": lambda: check() + tlv(0x8022, b"late"),
    "empty": lambda: b"",
    "rtp": lambda: bytes([0x80, 111]) + bytes(30),
    "short priority value": lambda: raw_signed(
        tlv(0x0006, f"{LOCAL_UFRAG}:{REMOTE_UFRAG}".encode()) + tlv(0x0024, b"\x01\x02")
    ),
    "overlong attribute": lambda: check()[:20] + struct.pack("!HH", 6, 400) + check()[24:],
    "priority only after integrity": lambda: after_integrity(tlv(0x0024, b"\x00\x00\x00\x01")),
}


@pytest.mark.parametrize("name", sorted(INVALID))
def test_invalid_check_raises_stun_error_and_changes_nothing(name: str) -> None:
    s = session(created=0.0)
    with pytest.raises(StunError):
        s.handle(INVALID[name](), ADDR, 1.0)
    assert s.address is None and s.last_valid_check is None
    # A valid check afterwards still works: the failure left no state behind.
    assert s.handle(check(), ADDR, 2.0).address_changed


def test_a_repeated_attribute_is_refused() -> None:
    # Found by fuzzing (tests/fuzz, target stun): the router finds the peer by the first
    # USERNAME (binding_username), aioice validated the last one. RFC 5389 §15 says only the
    # first occurrence counts; a check that repeats an attribute is refused outright.
    req = raw_signed(tlv(0x0006, b"Othr:BrWs") + browser_body())
    assert binding_username(req) == "Othr:BrWs"
    with pytest.raises(StunError, match="repeated"):
        session().handle(req, ADDR, 1.0)
    with pytest.raises(StunError, match="repeated"):
        session().handle(raw_signed(browser_body(tlv(0x0024, bytes(4)))), ADDR, 1.0)
    assert session().handle(raw_signed(browser_body()), ADDR, 1.0).address_changed


def test_unauthenticated_attributes_after_integrity_are_ignored() -> None:
    # USE-CANDIDATE placed after MESSAGE-INTEGRITY is not covered by it: it must not move us.
    s = session()
    s.handle(check(), ADDR, 1.0)
    result = s.handle(after_integrity(tlv(0x0025, b"")), OTHER, 2.0)
    assert not result.nominated and not result.address_changed
    assert s.address == ADDR


def test_bad_credentials_are_refused_at_construction() -> None:
    with pytest.raises(ValueError, match="ICE ufrag has 2 characters; RFC 8839 requires 4-256"):
        IceLiteSession("ab", REMOTE_PWD)  # ufrag too short
    with pytest.raises(ValueError, match="ICE ufrag has characters outside"):
        IceLiteSession("a:bc", REMOTE_PWD)  # ':' would break USERNAME routing
    with pytest.raises(ValueError, match="ICE pwd has 5 characters"):
        IceLiteSession(REMOTE_UFRAG, "short")
    with pytest.raises(ValueError, match="ICE pwd has characters outside"):
        IceLiteSession(REMOTE_UFRAG, REMOTE_PWD, local_pwd="has space in it 0123456789")


def test_credential_rule_says_why() -> None:
    """RFC 8839 §5.4: ufrag 4-256 and pwd 22-256 ice-chars (ALPHA / DIGIT / + /)."""
    assert credential_problem("ufrag", "abcd") is None
    assert credential_problem("ufrag", "A+/9" * 64) is None  # 256
    assert credential_problem("pwd", "p" * 22) is None
    assert credential_problem("ufrag", "abc") == "has 3 characters; RFC 8839 requires 4-256"
    assert credential_problem("pwd", "p" * 21) == "has 21 characters; RFC 8839 requires 22-256"
    assert credential_problem("pwd", "p" * 257) == "has 257 characters; RFC 8839 requires 22-256"
    for bad in ("ab:cd", "ab-cd", "abc\u0661", "abcé", "ab cd"):
        assert credential_problem("ufrag", bad) == "has characters outside A-Z a-z 0-9 + /"


# --- binding and moving -----------------------------------------------------------------


def test_first_valid_check_binds_without_nomination() -> None:
    s = session()
    assert s.address is None
    r = s.handle(check(use_candidate=False), ADDR, 1.0)
    assert r.address_changed and not r.nominated and s.address == ADDR


def test_check_from_other_address_without_use_candidate_is_answered_but_does_not_move() -> None:
    s = session()
    s.handle(check(), ADDR, 1.0)
    req = check()
    r = s.handle(req, OTHER, 2.0)
    resp = verified_response(r, req)
    assert resp.attributes["XOR-MAPPED-ADDRESS"] == OTHER
    assert not r.address_changed and not r.nominated
    assert s.address == ADDR
    assert s.last_valid_check == 1.0  # consent is only refreshed by the bound address


def test_use_candidate_from_other_address_moves_the_binding() -> None:
    s = session()
    s.handle(check(), ADDR, 1.0)
    r = s.handle(check(use_candidate=True), OTHER, 3.0)
    assert r.address_changed and r.nominated
    assert s.address == OTHER and s.last_valid_check == 3.0
    # The old address no longer refreshes consent.
    s.handle(check(), ADDR, 4.0)
    assert s.address == OTHER and s.last_valid_check == 3.0


def test_use_candidate_from_bound_address_is_nominated_without_change() -> None:
    s = session()
    s.handle(check(), ADDR, 1.0)
    r = s.handle(check(use_candidate=True), ADDR, 2.0)
    assert r.nominated and not r.address_changed
    assert s.last_valid_check == 2.0


def test_same_host_new_port_counts_as_a_different_address() -> None:
    s = session()
    s.handle(check(), ADDR, 1.0)
    assert not s.handle(check(), (ADDR[0], ADDR[1] + 1), 2.0).address_changed
    assert s.handle(check(use_candidate=True), (ADDR[0], ADDR[1] + 1), 2.0).address_changed


# --- role conflict ----------------------------------------------------------------------


def test_ice_controlled_peer_gets_signed_487_and_no_binding() -> None:
    s = session()
    req = check(controlled=True, use_candidate=True)
    r = s.handle(req, ADDR, 1.0)
    resp = verified_response(r, req)
    assert resp.message_class == stun.Class.ERROR
    assert resp.error_code == 487
    assert "XOR-MAPPED-ADDRESS" not in resp.attributes
    assert not r.address_changed and not r.nominated
    assert s.address is None and s.last_valid_check is None


def test_role_conflict_from_bound_address_does_not_refresh_consent() -> None:
    s = session()
    s.handle(check(), ADDR, 1.0)
    s.handle(check(controlled=True), ADDR, 20.0)
    assert s.last_valid_check == 1.0


def test_role_conflict_with_wrong_pwd_is_dropped_not_answered() -> None:
    s = session()
    with pytest.raises(StunError):
        s.handle(signed(request_message(controlled=True), pwd=REMOTE_PWD), ADDR, 1.0)


# --- consent ----------------------------------------------------------------------------


def test_consent_expires_when_no_check_ever_arrives() -> None:
    s = session(created=100.0, consent_timeout=30.0)
    assert not s.consent_expired(100.0)
    assert not s.consent_expired(129.9)
    assert s.consent_expired(130.0)


def test_consent_is_measured_from_the_last_valid_check_of_the_bound_address() -> None:
    s = session(created=100.0, consent_timeout=30.0)
    s.handle(check(), ADDR, 110.0)
    assert not s.consent_expired(139.9)
    assert s.consent_expired(140.0)
    s.handle(check(), ADDR, 135.0)
    assert not s.consent_expired(164.9)
    assert s.consent_expired(165.0)


def test_checks_from_elsewhere_and_invalid_checks_do_not_keep_consent() -> None:
    s = session(created=0.0, consent_timeout=30.0)
    s.handle(check(), ADDR, 1.0)
    s.handle(check(), OTHER, 2.0)  # the bound address is not quiet yet: OTHER is a candidate
    with pytest.raises(StunError):
        s.handle(signed(request_message(), pwd=REMOTE_PWD), ADDR, 26.0)
    assert s.consent_expired(31.0)


def test_consent_timeout_is_configurable() -> None:
    s = session(created=0.0, consent_timeout=5.0)
    s.handle(check(), ADDR, 1.0)
    assert not s.consent_expired(5.9)
    assert s.consent_expired(6.0)


# --- helpers: demux, username, credentials ----------------------------------------------


def test_binding_username_of_requests_and_of_everything_else() -> None:
    assert binding_username(check()) == f"{LOCAL_UFRAG}:{REMOTE_UFRAG}"
    assert binding_username(check(message_class=stun.Class.RESPONSE)) is None
    assert binding_username(check(message_class=stun.Class.INDICATION)) is None
    bare = stun.Message(stun.Method.BINDING, stun.Class.REQUEST)
    assert binding_username(no_integrity(bare)) is None
    assert binding_username(check()[:-1]) is None
    assert binding_username(b"") is None
    assert binding_username(b"\xff" * 100) is None
    bad_utf8 = raw_signed(tlv(0x0006, b"\xff\xfe:ab"))
    assert binding_username(bad_utf8) is None
    overlong = check()[:20] + struct.pack("!HH", 6, 400) + check()[24:]
    assert binding_username(overlong) is None
    # A USERNAME that claims more bytes than the datagram has, with a readable start.
    body = struct.pack("!HH", 6, 400) + b"ab:cd\0\0\0"
    truncated = struct.pack("!HHI12s", 1, len(body), stun.COOKIE, b"t" * 12) + body
    assert binding_username(truncated) is None
    # Anything after MESSAGE-INTEGRITY is unauthenticated: not a USERNAME to route by.
    late = tlv(0x0008, bytes(20)) + tlv(0x0006, b"ab:cd")
    late_msg = struct.pack("!HHI12s", 1, len(late), stun.COOKIE, b"t" * 12) + late
    assert binding_username(late_msg) is None


def test_generated_credentials_are_ice_chars_of_the_right_length() -> None:
    ice_chars = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")
    ufrags = {generate_ufrag() for _ in range(50)}
    pwds = {generate_pwd() for _ in range(50)}
    assert len(ufrags) == 50 and len(pwds) == 50
    assert all(len(u) == 8 and set(u) <= ice_chars for u in ufrags)
    assert all(len(p) == 24 and set(p) <= ice_chars for p in pwds)
    s = IceLiteSession(REMOTE_UFRAG, REMOTE_PWD)
    assert len(s.local_ufrag) == 8 and len(s.local_pwd) == 24


# --- properties -------------------------------------------------------------------------


@given(st.binary(max_size=300))
def test_arbitrary_bytes_never_crash(data: bytes) -> None:
    assert binding_username(data) is None or isinstance(binding_username(data), str)
    s = session()
    try:
        s.handle(data, ADDR, 0.0)
    except StunError:
        pass
    assert s.address is None


stun_like = st.builds(
    lambda mtype, txid, body: struct.pack("!HHI12s", mtype, len(body), stun.COOKIE, txid) + body,
    st.sampled_from([0x0001, 0x0101, 0x0011, 0x0111, 0x0003]),
    st.binary(min_size=12, max_size=12),
    st.lists(
        st.tuples(
            st.sampled_from([0x0006, 0x0008, 0x0009, 0x0020, 0x0024, 0x0025, 0x8028, 0x8029,
                             0x802A, 0x0001, 0x0077, 0xC057]),
            st.binary(max_size=24),
        ),
        max_size=8,
    ).map(lambda attrs: b"".join(tlv(t, v) for t, v in attrs)),
)


@given(stun_like)
@settings(suppress_health_check=[HealthCheck.too_slow])
def test_well_framed_garbage_raises_only_stun_error(data: bytes) -> None:
    # Gets past the header checks into aioice's attribute decoding.
    s = session()
    user = binding_username(data)
    assert user is None or isinstance(user, str)
    with pytest.raises(StunError):
        s.handle(data, ADDR, 0.0)  # no valid MESSAGE-INTEGRITY can be guessed
    assert s.address is None


@given(st.data())
def test_any_single_byte_flip_of_a_valid_check_is_refused(data: st.DataObject) -> None:
    req = check(use_candidate=True)
    i = data.draw(st.integers(0, len(req) - 1))
    bit = data.draw(st.integers(0, 7))
    mutated = req[:i] + bytes([req[i] ^ (1 << bit)]) + req[i + 1 :]
    with pytest.raises(StunError):
        session().handle(mutated, ADDR, 0.0)


ice_text = st.text("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/",
                   min_size=22, max_size=40)


@given(
    ufrags=st.tuples(ice_text.map(lambda t: t[:8]), ice_text.map(lambda t: t[:6])),
    pwd=ice_text,
    port=st.integers(1, 65535),
    octets=st.tuples(*[st.integers(0, 255)] * 4),
    priority=st.integers(0, 2**32 - 1),
)
def test_round_trip_for_any_credentials_and_address(
    ufrags: tuple[str, str], pwd: str, port: int, octets: tuple[int, ...], priority: int
) -> None:
    local, remote = ufrags
    s = IceLiteSession(remote, REMOTE_PWD, local_ufrag=local, local_pwd=pwd)
    addr = (".".join(map(str, octets)), port)
    req = signed(request_message(username=f"{local}:{remote}", priority=priority), pwd=pwd)
    assert binding_username(req) == f"{local}:{remote}"
    resp = stun.parse_message(s.handle(req, addr, 0.0).response)
    assert resp.check_message_integrity(pwd.encode())
    assert resp.attributes["XOR-MAPPED-ADDRESS"] == addr


# --- interop with aioice, a full controlling agent -----------------------------------------


class _Responder(asyncio.DatagramProtocol):
    """The smallest possible worker: route STUN into the session, answer valid checks."""

    def __init__(self, session: IceLiteSession) -> None:
        self.session = session
        self.transport: asyncio.DatagramTransport | None = None
        self.nominated = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        if classify(data) is not Kind.STUN:
            return
        try:
            result = self.session.handle(data, addr, asyncio.get_running_loop().time())
        except StunError:
            return
        self.nominated |= result.nominated
        assert self.transport is not None
        self.transport.sendto(result.response, addr)


@pytest.mark.parametrize("remote_is_lite", [True, False])
async def test_aioice_controlling_agent_connects(
    monkeypatch: pytest.MonkeyPatch, remote_is_lite: bool
) -> None:
    monkeypatch.setattr(aioice.ice, "get_host_addresses", lambda use_ipv4, use_ipv6: ["127.0.0.1"])
    loop = asyncio.get_running_loop()
    conn = aioice.Connection(ice_controlling=True, use_ipv6=False)
    s = IceLiteSession(conn.local_username, conn.local_password, created=loop.time())
    transport, responder = await loop.create_datagram_endpoint(
        lambda: _Responder(s), local_addr=("127.0.0.1", 0)
    )
    try:
        port = transport.get_extra_info("sockname")[1]
        await conn.gather_candidates()
        conn.remote_username = s.local_ufrag
        conn.remote_password = s.local_pwd
        conn.remote_is_lite = remote_is_lite
        await conn.add_remote_candidate(
            aioice.Candidate(
                foundation="1", component=1, transport="udp", priority=2130706431,
                host="127.0.0.1", port=port, type="host",
            )
        )
        await conn.add_remote_candidate(None)
        await asyncio.wait_for(conn.connect(), 10)

        local = conn.local_candidates[0]
        assert s.address == (local.host, local.port)
        assert responder.nominated
        assert not s.consent_expired(loop.time())
        # Media goes to the bound address and arrives at the agent.
        transport.sendto(b"\x80media", s.address)
        data, component = await asyncio.wait_for(conn.recvfrom(), 10)
        assert data == b"\x80media"
    finally:
        await conn.close()
        transport.close()
