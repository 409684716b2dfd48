"""Write the seed corpus (``corpus/<target>/seed-*``) from real frames, handshakes,
messages and datagrams, as this version's own encoders make them.

Usage: ``python make_corpus.py`` with pymasep-comm-core installed (after a first
``nox -s fuzz``: ``.nox/fuzz/bin/python integration_tests/fuzz/make_corpus.py``). It
rewrites the ``seed-*`` files
and leaves the others (``regress-*``: inputs that once crashed a target) alone. Run it
again when the wire, the handshake or the message format changes, and commit the result.
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Iterator
from pathlib import Path
from unittest import mock

import fuzztargets
from fuzzinput import plan
from fuzztargets import RESUME_PREAMBLE

from pymasep.comm.core import discovery, handshake, resume
from pymasep.comm.core.auth import AUTH_FAILED
from pymasep.comm.core.frame import Frame, FrameKind
from pymasep.comm.core.handshake import ClientHandshake, ServerHandshake
from pymasep.comm.core.message import Message
from pymasep.comm.core.resume import (
    ClientSession,
    RefusalReason,
    ResumeAccepted,
    ResumeRefused,
    encode_resume,
)
from pymasep.comm.core.wire import PREAMBLE, Wire, encode_frame

CORPUS = Path(__file__).parent / "corpus"

# Choice bytes, as the targets read them (see fuzztargets.py): wire 0 is v1, 1 legacy;
# limit 0 is the default, 4 is 16 bytes, 5 the hello limit; read kinds 0..4.
V1, LEGACY = 0, 1
DEFAULT_LIMIT, SMALL_LIMIT, HELLO_LIMIT = 0, 4, 5


def messages() -> Iterator[tuple[str, Message]]:
    """Messages like those pymasep's engine and interfaces exchange."""
    from fuzztargets import Piece
    from lxml import etree

    state = etree.Element("State", name="s0")
    etree.SubElement(state, "Object", name="board").text = "x.o"
    yield "define", Message(Message.MESSAGE_TYPE_DEFINE, {"game": "games.Race"}, "engine")
    yield (
        "register",
        Message(
            Message.MESSAGE_TYPE_REGISTER,
            {"id": "p1", "queue_id": "q", "role": 1},
            "p1",
        ),
    )
    yield (
        "observation",
        Message(
            Message.MESSAGE_TYPE_OBSERVATION,
            {
                "observation": state,
                "additional_information": {
                    "reward": 1.5,
                    "game_log": ["a", "", None],
                    "done": False,
                },
            },
            "engine",
        ),
    )
    yield "action", Message(Message.MESSAGE_TYPE_ACTION, {"action": ("move", 3, -2)}, "p1")
    yield (
        "values",
        Message(
            "custom",
            {
                "set": {1, 2},
                "nan": float("nan"),
                "inf": float("-inf"),
                "big": 2**70,
                "type": Piece,
                "nested": [[[{"k": (True,)}]]],
                "text": "é \u2603 <&>",
            },
            None,
        ),
    )
    yield "end", Message(Message.MESSAGE_TYPE_END_GAME, None, "engine")


def decoder_seeds() -> Iterator[tuple[str, bytes]]:
    frames = [
        Frame(b"<Message msg_type='action'/>"),
        Frame.hello_frame("p1"),
        Frame(b""),
        Frame(b"x" * 300),
        Frame.bye_frame(),
    ]
    v1 = b"".join(encode_frame(frame) for frame in [*frames, Frame.refuse_frame("full")])
    legacy = b"".join(encode_frame(frame, Wire.LEGACY) for frame in frames)
    for name, wire, stream in (("v1", V1, v1), ("legacy", LEGACY, legacy)):
        yield f"{name}-whole", plan([wire, DEFAULT_LIMIT, 0], [], stream)
        yield f"{name}-bytes", plan([wire, DEFAULT_LIMIT, 2], list(range(1, 17)), stream)
        yield f"{name}-cut", plan([wire, DEFAULT_LIMIT, 1], [3, 7, 40, 41, 200], stream)
        yield f"{name}-small-limit", plan([wire, SMALL_LIMIT, 4], [9], stream)
    yield "v1-unknown-kind", plan([V1, DEFAULT_LIMIT, 3], [2], v1[:12] + b"\x07\0\0\0\0")
    yield "v1-huge", plan([V1, DEFAULT_LIMIT, 0], [], b"\0\xff\xff\xff\xff")


def handshake_seeds() -> Iterator[tuple[str, bytes]]:
    for wire_name, wire in (("v1", Wire.V1), ("legacy", Wire.LEGACY)):
        client = ClientHandshake("p1", wire)
        hello = client.bytes_to_send()
        server = ServerHandshake("engine")
        server.receive_data(hello)
        behind = encode_frame(Frame(b"<Message msg_type='action'/>"), wire)
        # mode 0: the server reads a client's bytes (hello, then frames behind it).
        yield f"server-{wire_name}", plan([0, DEFAULT_LIMIT, 0], [], hello + behind)
        yield f"server-{wire_name}-cut", plan([0, HELLO_LIMIT, 0], [1, 3, 4, 6], hello + behind)
        mode = 1 if wire is Wire.V1 else 2
        # modes 1 and 2: the client reads a server's answer.
        answer = server.accept_bytes()
        yield f"client-{wire_name}", plan([mode, DEFAULT_LIMIT, 0], [], answer + behind)
        yield f"client-{wire_name}-cut", plan([mode, SMALL_LIMIT, 0], [2, 5], answer + behind)
        # mode 3: an honest pair; the choices are wire, ids, reason, refuse, key, then cuts.
        pair = [3, 0 if wire is Wire.V1 else 1, 2, *b"p1", 6, *b"engine", 4, *b"full"]
        yield f"pair-{wire_name}-accept", plan([*pair, 0, 0], [1, 5], b"")
        yield f"pair-{wire_name}-refuse", plan([*pair, 1, 0], [7], b"")
    behind_v1 = encode_frame(Frame(b"<Message msg_type='action'/>"))
    refusal = ServerHandshake("engine")
    refusal.receive_data(ClientHandshake("p1").bytes_to_send())
    yield "client-v1-refused", plan([1, DEFAULT_LIMIT, 0], [], refusal.refuse_bytes("full"))
    yield "server-wrong-version", plan([0, DEFAULT_LIMIT, 0], [], PREAMBLE[:4] + b"\x03")
    # Version 2: a client that offers to resume, and one that resumes a session.
    offering = ClientHandshake("p1", resume_offer=fuzztargets.OFFER).bytes_to_send()
    yield "server-v2-offer", plan([0, DEFAULT_LIMIT, 0], [], offering + behind_v1)
    request = RESUME_PREAMBLE + _request(None)
    yield "server-v2-request", plan([0, DEFAULT_LIMIT, 0], [2, 9], request)
    yield "server-key-v2-request", plan([SERVER_BYTES, DEFAULT_LIMIT, 0], [], request)
    yield "server-http", plan([0, DEFAULT_LIMIT, 0], [], b"GET / HTTP/1.1\r\n\r\n")
    yield from keyed_handshake_seeds()


# Modes of the handshake target with a key: a server whose key is bytes, a mapping, a
# callable; a v1 client.
SERVER_BYTES, SERVER_MAPPING, SERVER_CALLABLE, CLIENT_KEY = 4, 5, 6, 7


def keyed_handshake_seeds() -> Iterator[tuple[str, bytes]]:
    """The authenticated v1 handshake, recorded from a real pair with the target's key;
    its nonces are fixed here, so that the seeds come out the same on every run."""
    from fuzztargets import KEY

    counter = itertools.count()
    fixed = lambda: hashlib.sha256(b"seed nonce %d" % next(counter)).digest()  # noqa: E731
    with mock.patch.object(handshake, "new_nonce", fixed):
        yield from _keyed_handshake_seeds(KEY)


def _keyed_handshake_seeds(key: bytes) -> Iterator[tuple[str, bytes]]:
    client = ClientHandshake("p1", authkey=key)
    server = ServerHandshake("engine", authkey=key)
    opening = client.bytes_to_send()  # PREAMBLE, AUTH(client nonce), HELLO
    server.receive_data(opening)
    challenge = server.data_to_send()  # PREAMBLE, AUTH(server nonce, proof, id)
    client.receive_data(challenge)
    client_proof = client.data_to_send()  # AUTH(client proof)
    server.receive_data(client_proof)
    behind = encode_frame(Frame(b"<Message msg_type='action'/>"))
    refusal = server.refuse_bytes(AUTH_FAILED)  # no preamble: the challenge had it
    for name, mode in (
        ("bytes", SERVER_BYTES),
        ("mapping", SERVER_MAPPING),
        ("callable", SERVER_CALLABLE),
    ):
        # A recorded opening and proof: the server's nonce is fresh, so they must fail.
        yield f"server-key-{name}-opening", plan([mode, DEFAULT_LIMIT, 0], [], opening)
        yield (
            f"server-key-{name}-replay",
            plan([mode, HELLO_LIMIT, 0], [5, 41], opening + client_proof + behind),
        )
    legacy_hello = ClientHandshake("p1", Wire.LEGACY).bytes_to_send()
    yield "server-key-legacy", plan([SERVER_BYTES, DEFAULT_LIMIT, 0], [], legacy_hello)
    plain = ServerHandshake("engine")
    plain.receive_data(ClientHandshake("interface").bytes_to_send())
    yield "client-key-challenge", plan([CLIENT_KEY, DEFAULT_LIMIT, 0], [3, 9], challenge)
    yield (
        "client-key-refused",
        plan([CLIENT_KEY, DEFAULT_LIMIT, 0], [], challenge + refusal),
    )
    yield (
        "client-key-accepted",
        plan([CLIENT_KEY, DEFAULT_LIMIT, 0], [], challenge + server.accept_bytes() + behind),
    )
    yield "client-key-plain-hello", plan([CLIENT_KEY, DEFAULT_LIMIT, 0], [], plain.accept_bytes())
    # The honest pair with a key: 1 bytes, 2 a mapping, 3 a callable, 4 the wrong key,
    # 5 an id the server has no key for.
    pair = [3, 0, 2, *b"p1", 6, *b"engine", 4, *b"full"]
    for how, name in enumerate(("bytes", "mapping", "callable", "wrong-key", "unknown-id"), 1):
        yield f"pair-key-{name}", plan([*pair, 0, how], [1, 40], b"")
    yield "pair-key-refuse", plan([*pair, 1, 1], [7], b"")


def _request(key: bytes | None) -> bytes:
    """A real RESUME(REQUEST) frame of the resume target's fixed session, its nonce
    fixed too, so that the seeds come out the same on every run."""
    nonce = hashlib.sha256(b"seed resume nonce").digest()
    with mock.patch.object(resume, "new_nonce", return_value=nonce):
        session = ClientSession.start(fuzztargets.OFFER, fuzztargets.ACCEPT, "p1", "engine", key)
        return session.request()


def resume_seeds() -> Iterator[tuple[str, bytes]]:
    """Seeds of the resume target: a server after ``MAGIC 02`` (mode 0: key, steal,
    limit), a client's ResumeHandshake (mode 1: key, frames sent, received, limit) and
    its session reading a raw answer (mode 2: key, sent, received)."""
    behind = encode_frame(Frame(b"<Message msg_type='action'/>"))
    for keyed, key in ((0, None), (1, fuzztargets.KEY)):
        name = "key-" if keyed else ""
        request = _request(key)
        yield f"server-{name}request", plan([0, keyed, 0, DEFAULT_LIMIT], [], request)
        yield f"server-{name}stolen-id", plan([0, keyed, 1, DEFAULT_LIMIT], [4, 60], request)
        nonce = hashlib.sha256(b"seed auth nonce").digest()  # the same seed every run
        with mock.patch.object(handshake, "new_nonce", return_value=nonce):
            offering = ClientHandshake("p1", authkey=key, resume_offer=fuzztargets.OFFER)
        opening = offering.bytes_to_send()[len(PREAMBLE) :]
        yield f"server-{name}offer", plan([0, keyed, 0, DEFAULT_LIMIT], [5], opening + behind)
    yield "server-request-then-more", plan([0, 0, 0, DEFAULT_LIMIT], [], _request(None) + behind)
    answers = {
        "accepted": encode_resume(ResumeAccepted(2, bytes(32))),
        **{
            f"refused-{reason.name.lower()}": encode_resume(ResumeRefused(reason))
            for reason in RefusalReason
        },
        "accept": encode_resume(fuzztargets.ACCEPT),
    }
    for name, answer in answers.items():
        frame = RESUME_PREAMBLE + encode_frame(Frame(answer, FrameKind.RESUME))
        yield f"client-{name}", plan([1, 1, 3, 2, DEFAULT_LIMIT], [3, 11], frame + behind)
        yield f"answer-{name}", bytes([2, 0, 3, 2]) + answer
    refusal = RESUME_PREAMBLE + encode_frame(Frame.refuse_frame("the server is closing"))
    yield "client-refuse-frame", plan([1, 0, 0, 0, DEFAULT_LIMIT], [], refusal)
    older = PREAMBLE + encode_frame(Frame.refuse_frame("protocol version 2"))
    yield "client-older-server", plan([1, 0, 0, 0, DEFAULT_LIMIT], [], older)


def message_seeds() -> Iterator[tuple[str, bytes]]:
    for name, message in messages():
        yield name, message.to_bytes()
    yield (
        "unknown-type",
        b"<Message msg_type='x'><dict><item key='t'>"
        b"<type>&lt;class 'a.B'&gt;</type></item></dict></Message>",
    )
    yield from grammar_seeds()
    yield "doctype", b"<!DOCTYPE m [<!ENTITY e 'x'>]><Message msg_type='x'>&e;</Message>"


def grammar_seeds() -> Iterator[tuple[str, bytes]]:
    """Inputs for the message target's grammar (fuzztargets.STRUCTURED, then choices):
    the first few, from a fixed random sequence, that write a message which decodes and
    holds each kind of container."""
    import random

    from fuzzinput import FuzzInput
    from fuzztargets import STRUCTURED, _message_xml

    rng = random.Random(13)
    wanted = ["<set>", "<tuple>", "<list>", "<dict><item", "<float>", "<type>"]
    for _ in range(100_000):
        if not wanted:
            return
        choices = rng.randbytes(rng.randrange(8, 64))
        xml = _message_xml(FuzzInput(choices))
        found = next((tag for tag in wanted if tag.encode() in xml), None)
        if found is None:
            continue
        try:
            Message("", None, None).from_bytes(xml)
        except Exception:
            continue
        wanted.remove(found)
        yield f"grammar-{found.strip('<>').split('>')[0]}", bytes([STRUCTURED]) + choices


def discovery_seeds() -> Iterator[tuple[str, bytes]]:
    yield "query-legacy", bytes([0]) + discovery.QUERY
    yield "query-v1", bytes([0]) + discovery.build_query()
    yield "query-later", bytes([0]) + discovery.QUERY + b" v2 v1"
    source = bytes([1, 1, 127, 0, 0, 1, 0x27, 0x10])
    yield (
        "reply-legacy",
        source + discovery.build_reply("127.0.0.1", 5000, server_id="engine", fmt="legacy"),
    )
    yield (
        "reply-v1",
        source
        + discovery.build_reply(
            "127.0.0.1", 5000, server_id="engine", name="Race \u2603", bound=True
        ),
    )
    yield (
        "reply-v1-unbound",
        source + discovery.build_reply("10.0.0.2", 65535, server_id="e", wire_versions=("legacy",)),
    )
    yield "build", bytes([2, 0, 4, 6, *b"engine", 1, 4, *b"Race", 2, 0, 1, 1, 0])


SEEDS = {
    "decoder": decoder_seeds,
    "handshake": handshake_seeds,
    "message": message_seeds,
    "discovery": discovery_seeds,
    "resume": resume_seeds,
}


def write(corpus: Path = CORPUS) -> dict[str, int]:
    """Rewrite every target's ``seed-*`` files; return how many each has."""
    counts = {}
    for target, seeds in SEEDS.items():
        folder = corpus / target
        folder.mkdir(parents=True, exist_ok=True)
        for old in folder.glob("seed-*"):
            old.unlink()
        made = list(seeds())
        for name, data in made:
            digest = hashlib.sha1(data).hexdigest()[:8]
            (folder / f"seed-{name}-{digest}").write_bytes(data)
        counts[target] = len(made)
    return counts


if __name__ == "__main__":
    for target, count in write().items():
        print(f"{target}: {count} seeds")
