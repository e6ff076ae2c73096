"""The bench's controlling ICE checks against the server's real ICE-lite responder."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bench.stunclient import IceController, StunClientError
from sfu.ice import IceLiteSession, StunError

ADDR = ("127.0.0.1", 5000)


def _pair() -> tuple[IceLiteSession, IceController]:
    server = IceLiteSession("clnt", "c" * 22)
    client = IceController("clnt", server.local_ufrag, server.local_pwd)
    return server, client


def test_nominating_check_binds_and_answer_verifies() -> None:
    server, client = _pair()
    result = server.handle(client.request(1.0), ADDR, 1.0)
    assert result.address_changed and result.nominated
    assert server.address == ADDR
    assert client.handle(result.response, 1.25) is True
    assert client.succeeded and client.mapped_address == ADDR
    assert client.last_rtt == pytest.approx(0.25)


def test_consent_check_refreshes_without_nominating() -> None:
    server, client = _pair()
    client.handle(server.handle(client.request(1.0), ADDR, 1.0).response, 1.0)
    result = server.handle(client.request(6.0, nominate=False), ADDR, 6.0)
    assert not result.nominated and not result.address_changed
    assert server.last_valid_check == 6.0
    assert client.handle(result.response, 6.0)


def test_answer_signed_with_another_password_is_refused() -> None:
    server, _ = _pair()
    impostor = IceController("clnt", server.local_ufrag, "z" * 22)
    with pytest.raises(StunError):  # the server refuses the check signed with the wrong key
        server.handle(impostor.request(0.0), ADDR, 0.0)
    # and a genuine answer does not verify under a wrong password on our side
    honest = IceController("clnt", server.local_ufrag, server.local_pwd)
    request = honest.request(0.0)
    response = server.handle(request, ADDR, 0.0).response
    wrong = IceController("clnt", server.local_ufrag, "y" * 22)
    wrong._outstanding = dict(honest._outstanding)  # same pending transaction
    with pytest.raises(StunClientError, match="INTEGRITY"):
        wrong.handle(response, 0.0)


def test_unsolicited_and_replayed_answers_are_refused() -> None:
    server, client = _pair()
    response = server.handle(client.request(0.0), ADDR, 0.0).response
    assert client.handle(response, 0.0)
    with pytest.raises(StunClientError, match="pending"):
        client.handle(response, 0.0)  # replay: the transaction is done


def test_our_requests_are_not_answers() -> None:
    _, client = _pair()
    with pytest.raises(StunClientError):
        client.handle(client.request(0.0), 0.0)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_arbitrary_bytes_raise_only_stun_client_error(data: bytes) -> None:
    _, client = _pair()
    client.request(0.0)
    try:
        client.handle(data, 0.0)
    except StunClientError:
        pass


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_mutated_answers_raise_only_stun_client_error(data: st.DataObject) -> None:
    server, client = _pair()
    response = bytearray(server.handle(client.request(0.0), ADDR, 0.0).response)
    for _ in range(data.draw(st.integers(1, 4))):
        i = data.draw(st.integers(0, len(response) - 1))
        response[i] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(response)))
    try:
        client.handle(bytes(response[:cut]), 0.0)
    except StunClientError:
        pass
