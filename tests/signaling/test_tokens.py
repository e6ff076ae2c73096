"""Signed join tokens (signaling/tokens.py): what admits, and every way a token is refused."""

from __future__ import annotations

import base64
import json

import jwt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from signaling.messages import Join, ProtocolError
from signaling.tokens import (
    MAX_TTL,
    Grant,
    TokenCheck,
    TokenError,
    admit_token,
    issue,
    verify,
)

SECRET = "s" * 64  # long enough for HS512 too: the algorithm test signs with it
NOW = 1_800_000_000.0


def token(claims: dict[str, object], secret: str = SECRET, algorithm: str = "HS256",
          headers: dict[str, object] | None = None) -> str:
    return jwt.encode(claims, secret, algorithm=algorithm, headers=headers)


def claims(**changes: object) -> dict[str, object]:
    base: dict[str, object] = {"room": "ops", "name": "Ann", "exp": int(NOW) + 3600}
    base.update(changes)
    return {k: v for k, v in base.items() if v is not None}


def refused(text: str, room: str = "ops", now: float = NOW) -> TokenError:
    with pytest.raises(TokenError) as caught:
        verify(SECRET, text, room, now)
    return caught.value


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


# -- what admits ---------------------------------------------------------------------------------


def test_a_token_issued_for_a_grant_verifies_to_that_grant() -> None:
    grant = Grant("ops", "Ann", NOW + 3600, listen_only=True, priority=7)
    assert verify(SECRET, issue(SECRET, grant), "ops", NOW) == grant


def test_permissions_default_to_none() -> None:
    assert verify(SECRET, token(claims()), "ops", NOW) == Grant("ops", "Ann", NOW + 3600)


def test_the_name_is_normalised_like_a_typed_one() -> None:
    assert verify(SECRET, token(claims(name="  Ann ")), "ops", NOW).name == "Ann"


def test_unknown_claims_are_ignored() -> None:
    assert verify(SECRET, token(claims(iss="crm", sub="u-17")), "ops", NOW).name == "Ann"


# -- every refusal ------------------------------------------------------------------------------


def test_an_expired_token_says_so() -> None:
    error = refused(token(claims(exp=int(NOW) - 60)))
    assert error.code == "token_expired"


def test_a_little_clock_difference_is_tolerated() -> None:
    assert verify(SECRET, token(claims(exp=int(NOW) - 5)), "ops", NOW).room == "ops"


def test_a_token_for_another_room_is_refused() -> None:
    error = refused(token(claims()), room="sales")
    assert (error.code, error.message) == ("bad_token", "this token is for another room")


def test_a_tampered_payload_is_refused() -> None:
    header, _, signature = token(claims()).split(".")
    forged = _b64(json.dumps(claims(priority=255)).encode())
    assert refused(f"{header}.{forged}.{signature}").message == "token signature does not match"


def test_a_token_signed_with_another_secret_is_refused() -> None:
    assert refused(token(claims(), secret="x" * 64)).code == "bad_token"


def test_alg_none_is_refused() -> None:
    header = _b64(json.dumps({"alg": "none", "typ": "JWT"}).encode())
    payload = _b64(json.dumps(claims()).encode())
    for unsigned in (f"{header}.{payload}.", f"{header}.{payload}"):
        assert refused(unsigned).code == "bad_token"


def test_other_algorithms_are_refused_even_with_the_right_secret() -> None:
    for algorithm in ("HS384", "HS512"):
        error = refused(token(claims(), algorithm=algorithm))
        assert error.message == "token not signed with HS256"


@pytest.mark.parametrize("missing", ["room", "name", "exp"])
def test_every_required_claim_is_required(missing: str) -> None:
    error = refused(token({k: v for k, v in claims().items() if k != missing}))
    assert error.code == "bad_token" and missing in error.message


@pytest.mark.parametrize("changes", [
    {"exp": "tomorrow"}, {"exp": True}, {"room": 5}, {"name": ["Ann"]},
    {"listen_only": 1}, {"listen_only": "yes"}, {"priority": True}, {"priority": 1.5},
    {"priority": -1}, {"priority": 256}, {"priority": "5"},
])
def test_wrongly_typed_or_out_of_range_claims_are_refused(changes: dict[str, object]) -> None:
    assert refused(token(claims(**changes))).code == "bad_token"


def test_a_token_may_not_last_longer_than_a_week() -> None:
    assert refused(token(claims(exp=int(NOW + MAX_TTL) + 3600))).code == "bad_token"
    assert verify(SECRET, token(claims(exp=int(NOW + MAX_TTL))), "ops", NOW).room == "ops"


def test_a_name_the_server_would_refuse_is_refused() -> None:
    error = refused(token(claims(name="An\u200bn")))
    assert error.code == "bad_token" and error.message.startswith("token name:")


def test_oversize_empty_and_garbage_tokens_are_refused() -> None:
    assert "longer than" in refused(token(claims(pad="x" * 3000))).message
    for garbage in ("", "abc", "a.b.c", "....", "\ud800.x.y", "e30.e30.e30"):
        assert refused(garbage).code == "bad_token"


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=300))
def test_verify_raises_only_token_errors(text: str) -> None:
    with pytest.raises(TokenError):
        verify(SECRET, text, "ops", NOW)


# -- the server's policy --------------------------------------------------------------------------


def test_a_short_secret_is_refused_up_front() -> None:
    with pytest.raises(ValueError, match="at least 32"):
        TokenCheck("short")


def test_a_server_without_tokens_refuses_a_token_and_admits_as_before() -> None:
    assert admit_token(None, Join("ops", "Ann")) is None
    with pytest.raises(TokenError) as caught:
        admit_token(None, Join("ops", "", token=token(claims())))
    assert caught.value.code == "bad_token"


def test_a_server_with_tokens_needs_one_and_takes_no_password() -> None:
    check = TokenCheck(SECRET, clock=lambda: NOW)
    assert admit_token(check, Join("ops", "", token=token(claims()))) == Grant(
        "ops", "Ann", NOW + 3600)
    with pytest.raises(TokenError) as caught:
        admit_token(check, Join("ops", "Ann"))
    assert caught.value.code == "bad_token"
    with pytest.raises(ProtocolError) as refused_password:
        admit_token(check, Join("ops", "", "pw", token(claims())))
    assert refused_password.value.code == "bad_message"


def test_the_secret_never_shows_in_a_repr() -> None:
    assert SECRET not in repr(TokenCheck(SECRET))


def test_issue_refuses_what_verify_would_refuse() -> None:
    for grant in (Grant("Ops", "Ann", NOW), Grant("ops", "", NOW),
                  Grant("ops", "Ann", NOW, priority=300)):
        with pytest.raises(ValueError):
            issue(SECRET, grant)
