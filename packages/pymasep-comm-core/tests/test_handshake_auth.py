"""The handshake with a key, as byte-fed state machines: mutual proof, identity binding,
replay, and refusals that do not say what failed."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pymasep.comm.core import (
    ConnectionRejectedError,
    Frame,
    FrameKind,
    InvalidArgumentError,
    Wire,
    encode_frame,
)
from pymasep.comm.core.auth import AUTH_FAILED, MAC_SIZE, NONCE_SIZE
from pymasep.comm.core.handshake import ClientHandshake, ServerHandshake
from pymasep.comm.core.wire import PREAMBLE, FrameDecoder

pytestmark = pytest.mark.disable_socket  # sans-I/O: a socket fails the test

KEY = b"k" * 32
OTHER = b"o" * 32


def run(client: ClientHandshake, server: ServerHandshake) -> tuple[list[bytes], list[bytes]]:
    """Play a whole handshake in memory; return what each side sent, in order. Raises
    what either side raises."""
    to_server = [client.bytes_to_send()]
    to_client: list[bytes] = []
    while True:
        done = server.receive_data(to_server[-1])
        answer = server.data_to_send()
        if done:
            answer += server.accept_bytes()
        to_client.append(answer)
        if client.receive_data(answer):
            return to_server, to_client
        to_server.append(client.data_to_send())


def test_the_same_key_authenticates_both_sides() -> None:
    client, server = ClientHandshake("p1", authkey=KEY), ServerHandshake("engine", authkey=KEY)
    run(client, server)
    assert server.client_ident == "p1"
    assert client.server_ident == "engine"


def test_the_server_knows_which_id_it_challenged_until_the_proof_comes() -> None:
    client, server = ClientHandshake("p1", authkey=OTHER), ServerHandshake("engine", authkey=KEY)
    assert not server.receive_data(client.bytes_to_send())
    assert server.challenged == "p1"  # a client leaving now holds another key
    with pytest.raises(ConnectionRejectedError):
        client.receive_data(server.data_to_send())
    client, server = ClientHandshake("p1", authkey=KEY), ServerHandshake("engine", authkey=KEY)
    run(client, server)
    assert server.challenged is None


@pytest.mark.parametrize("key", [b"\0" * 32, OTHER])
def test_a_wrong_key_is_refused_by_the_client_and_the_reason_says_nothing_more(
    key: bytes,
) -> None:
    client, server = ClientHandshake("p1", authkey=key), ServerHandshake("engine", authkey=KEY)
    with pytest.raises(ConnectionRejectedError) as raised:
        run(client, server)
    assert raised.value.reason == AUTH_FAILED
    assert server.client_ident is None


def test_the_key_never_crosses_the_wire() -> None:
    client, server = ClientHandshake("p1", authkey=KEY), ServerHandshake("engine", authkey=KEY)
    to_server, to_client = run(client, server)
    assert all(KEY not in data for data in to_server + to_client)


def test_a_client_without_a_key_is_refused_before_anything_is_proved() -> None:
    server = ServerHandshake("engine", authkey=KEY)
    with pytest.raises(ConnectionRejectedError, match=AUTH_FAILED):
        server.receive_data(ClientHandshake("p1").bytes_to_send())
    assert server.client_ident is None
    assert AUTH_FAILED.encode() in server.refuse_bytes(AUTH_FAILED)


def test_a_client_with_a_key_refuses_a_server_without_one() -> None:
    client = ClientHandshake("p1", authkey=KEY)
    server_hello = PREAMBLE + encode_frame(Frame.hello_frame("engine"))
    with pytest.raises(ConnectionRejectedError, match=AUTH_FAILED):
        client.receive_data(server_hello)


def test_a_server_without_a_key_refuses_a_client_that_wants_one() -> None:
    server = ServerHandshake("engine")
    with pytest.raises(ConnectionRejectedError, match=AUTH_FAILED):
        server.receive_data(ClientHandshake("p1", authkey=KEY).bytes_to_send())


def test_a_legacy_hello_is_refused_by_a_server_with_a_key() -> None:
    server = ServerHandshake("engine", authkey=KEY)
    with pytest.raises(ConnectionRejectedError):
        server.receive_data(len(b"p1").to_bytes(2, "little") + b"p1")
    assert server.client_ident is None
    assert server.refuse_bytes(AUTH_FAILED) == b""  # 0.2 only sees the connection close


def test_the_legacy_wire_cannot_take_a_key() -> None:
    with pytest.raises(InvalidArgumentError):
        ClientHandshake("p1", Wire.LEGACY, authkey=KEY)


def test_per_interface_keys_bind_each_key_to_its_id() -> None:
    keys = {"p1": b"1" * 32, "p2": b"2" * 32}
    ok = ServerHandshake("engine", authkey=keys)
    run(ClientHandshake("p2", authkey=keys["p2"]), ok)
    assert ok.client_ident == "p2"
    # p1's key, claiming p2's id: the server's proof is made with p2's key, p1 refuses it;
    # a client that ignores that and answers anyway is refused too.
    with pytest.raises(ConnectionRejectedError, match=AUTH_FAILED):
        run(ClientHandshake("p2", authkey=keys["p1"]), ServerHandshake("engine", authkey=keys))
    server = ServerHandshake("engine", authkey=keys)
    impostor = ClientHandshake("p2", authkey=keys["p1"])
    server.receive_data(impostor.bytes_to_send())
    challenge = server.data_to_send()
    forged = _forged_proof(challenge, keys["p1"], impostor)
    with pytest.raises(ConnectionRejectedError, match=AUTH_FAILED):
        server.receive_data(forged)
    assert server.client_ident is None


def _forged_proof(challenge: bytes, key: bytes, client: ClientHandshake) -> bytes:
    """The proof a client holding ``key`` makes for ``challenge``, whether or not the
    server's own proof was good."""
    from pymasep.comm.core.auth import proof

    (frame,) = FrameDecoder(Wire.V1).feed(challenge[len(PREAMBLE) :])
    nonce, server_id = frame.message[:NONCE_SIZE], frame.message[NONCE_SIZE + MAC_SIZE :]
    client_nonce = client.bytes_to_send()[len(PREAMBLE) + 5 : len(PREAMBLE) + 5 + NONCE_SIZE]
    mine = proof(key, "client", client_nonce, nonce, client.ident, server_id.decode())
    return encode_frame(Frame(mine, FrameKind.AUTH))


def test_a_callable_returning_none_refuses_that_id_the_same_way_as_a_wrong_key() -> None:
    def lookup(ident: str) -> bytes | None:
        return KEY if ident == "p1" else None

    run(ClientHandshake("p1", authkey=KEY), ServerHandshake("engine", authkey=lookup))
    server = ServerHandshake("engine", authkey=lookup)
    stranger = ClientHandshake("p9", authkey=KEY)
    server.receive_data(stranger.bytes_to_send())
    # The challenge looks like any other: same layout, same size.
    assert len(server.data_to_send()) == len(PREAMBLE) + 5 + NONCE_SIZE + MAC_SIZE + len("engine")
    with pytest.raises(ConnectionRejectedError, match=AUTH_FAILED):
        server.receive_data(encode_frame(Frame(b"x" * MAC_SIZE, FrameKind.AUTH)))


def test_a_recorded_client_handshake_replayed_is_refused() -> None:
    client, server = ClientHandshake("p1", authkey=KEY), ServerHandshake("engine", authkey=KEY)
    to_server, _ = run(client, server)
    replayed = ServerHandshake("engine", authkey=KEY)
    assert not replayed.receive_data(to_server[0])
    assert replayed.data_to_send()  # a fresh challenge, which the recording cannot answer
    with pytest.raises(ConnectionRejectedError, match=AUTH_FAILED):
        replayed.receive_data(to_server[1])
    assert replayed.client_ident is None


def test_a_recorded_server_answer_replayed_is_refused() -> None:
    client, server = ClientHandshake("p1", authkey=KEY), ServerHandshake("engine", authkey=KEY)
    _, to_client = run(client, server)
    fooled = ClientHandshake("p1", authkey=KEY)  # a fresh nonce
    with pytest.raises(ConnectionRejectedError, match=AUTH_FAILED):
        fooled.receive_data(to_client[0])


def test_a_server_proof_is_not_a_client_proof() -> None:
    # Reflection: the server's proof sent back as the client's must fail.
    server = ServerHandshake("engine", authkey=KEY)
    client = ClientHandshake("p1", authkey=KEY)
    server.receive_data(client.bytes_to_send())
    challenge = server.data_to_send()
    (frame,) = FrameDecoder(Wire.V1).feed(challenge[len(PREAMBLE) :])
    reflected = frame.message[NONCE_SIZE : NONCE_SIZE + MAC_SIZE]
    with pytest.raises(ConnectionRejectedError):
        server.receive_data(encode_frame(Frame(reflected, FrameKind.AUTH)))


@pytest.mark.parametrize("authkey", [b"", "text", 42])
def test_a_key_that_is_not_bytes_is_refused_at_once(authkey: object) -> None:
    with pytest.raises(InvalidArgumentError):
        ServerHandshake("engine", authkey=authkey)  # type: ignore[arg-type]


@settings(max_examples=50, deadline=None)
@given(st.data())
def test_any_chunking_of_an_authenticated_handshake_completes(data: st.DataObject) -> None:
    client, server = ClientHandshake("p1", authkey=KEY), ServerHandshake("engine", authkey=KEY)
    for chunk in _chunks(data, client.bytes_to_send()):
        assert not server.receive_data(chunk)
    answer = server.data_to_send()
    for chunk in _chunks(data, answer):
        assert not client.receive_data(chunk)
    # The proof with a data frame right behind it, in two pieces.
    proof = client.data_to_send() + encode_frame(Frame(b"tail"))
    cut = data.draw(st.integers(1, len(proof) - 1))
    assert not server.receive_data(proof[:cut]) or cut >= len(proof) - 9
    if server.client_ident is None:
        assert server.receive_data(proof[cut:])
    assert server.client_ident == "p1"
    assert client.receive_data(server.accept_bytes())


def _chunks(data: st.DataObject, payload: bytes) -> list[bytes]:
    cuts = sorted(data.draw(st.lists(st.integers(0, len(payload)), max_size=6)))
    bounds = [0, *cuts, len(payload)]
    return [payload[a:b] for a, b in itertools.pairwise(bounds) if b > a]
