"""Tokens, grants and admission in the core, with no network."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import given, settings
from hypothesis import strategies as st

from hubbub.auth import (
    Admission,
    AuthMode,
    Grant,
    KeyConfigError,
    RoomScope,
    TokenError,
    TokenVerifier,
    VerificationKeys,
)
from hubbub.auth.turn import IceServerConfig, turn_credentials
from hubbub.core import Limits
from hubbub.protocol import ErrorCode
from tests.tokens import SECRET, signed, token
from tests.unit.helpers import Harness

VERIFIER = TokenVerifier(VerificationKeys.load(SECRET, None))


def token_hub(**options: object) -> Harness:
    return Harness(admission=Admission(AuthMode.TOKEN, VERIFIER), **options)


def test_room_scope() -> None:
    scope = RoomScope.parse(["team", "support-*"])
    assert scope.allows("team")
    assert scope.allows("support-")
    assert scope.allows("support-1")
    assert not scope.allows("team2")
    assert not scope.allows("support")
    assert RoomScope.parse(["*"]).allows("anything")
    assert not RoomScope.parse([]).allows("anything")


def test_keys_are_checked_at_start() -> None:
    with pytest.raises(KeyConfigError, match="32 bytes"):
        VerificationKeys.load("short", None)
    with pytest.raises(KeyConfigError, match="needs token_secret"):
        TokenVerifier(VerificationKeys.load(None, None))


def test_a_verified_identity() -> None:
    identity = VERIFIER.verify(token("alice", ["team"], grants=["join", "admin"], name="Al"))
    assert identity.user_id == "alice"
    assert identity.name == "Al"
    assert identity.verified
    assert identity.grants == {Grant.JOIN, Grant.ADMIN}
    assert identity.rooms.allows("team")


def test_a_user_id_longer_than_the_limit_is_refused() -> None:
    verifier = TokenVerifier(VerificationKeys.load(SECRET, None), max_user_id_length=8)
    with pytest.raises(TokenError) as refused:
        verifier.verify(token("a-very-long-user-id"))
    assert refused.value.code is ErrorCode.TOKEN_INVALID


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=400))
def test_any_text_as_a_token_is_an_identity_or_a_token_error(text: str) -> None:
    try:
        VERIFIER.verify(text)
    except TokenError as error:
        code = error.code
    else:  # pragma: no cover - random text is no token signed with our secret
        code = None
    assert code is not None
    assert code.value.startswith("token-")


@settings(max_examples=300, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(["sub", "exp", "nbf", "rooms", "grants", "name", "iat", "aud"]),
        st.none() | st.booleans() | st.integers() | st.text(max_size=10) | st.lists(st.text()),
    )
)
def test_any_claims_signed_with_the_key_are_checked_not_trusted(claims: dict) -> None:
    try:
        identity = VERIFIER.verify(signed(claims))
    except TokenError as error:
        refused: TokenError | None = error
    else:
        refused = None
        assert isinstance(identity.user_id, str)
        assert identity.user_id
    if refused is not None:
        assert refused.code.value.startswith("token-")


def test_turn_credentials_follow_the_turn_rest_scheme() -> None:
    # echo -n 1700000000:alice | openssl dgst -sha1 -hmac secret -binary | base64
    assert turn_credentials("secret", "alice", 1_700_000_000) == (
        "1700000000:alice",
        "d8soP47RbdIKLDUOpnJPVQyq5Ts=",
    )
    config = IceServerConfig(
        stun_uris=["stun:s"],
        turn_uris=["turn:t"],
        turn_secret="secret",
        turn_ttl=60,
        wall_clock=lambda: 1_000.0,
    )
    servers, expires_at = config.for_user("bob")
    assert expires_at == 1_060
    assert servers[0].urls == ["stun:s"]
    assert servers[1].username == "1060:bob"
    assert config.refresh_after == 45


# -- the hub with admission ---------------------------------------------------


def test_token_mode_needs_a_token_and_takes_the_identity_from_it() -> None:
    h = token_hub()
    h.connect("a")
    h.send("a", {"type": "join-room", "room": "r", "userId": "a"})
    assert h.take("a")[0]["code"] == "token-required"
    joined = h.join("a", "r", token=token("alice"))
    assert joined["userId"] == "alice"
    assert joined["grants"] == ["chat", "join", "publish", "screen", "signal"]


def test_a_verified_newcomer_replaces_the_older_session() -> None:
    h = token_hub()
    h.join("old", "r", token=token("alice"))
    h.join("bob", "r", token=token("bob"))
    h.take("old")
    joined = h.join("new", "r", token=token("alice"))
    assert [p["userId"] for p in joined["participants"]] == ["bob"]
    assert h.outbox.closed[h.clients["old"].session_id][0] == 4009
    assert h.take("bob") == [
        {"type": "user-left", "userId": "alice"},
        {
            "type": "user-joined",
            "userId": "alice",
            "polite": False,
            "status": "online",
            "grants": ["chat", "join", "publish", "screen", "signal"],
        },
    ]
    assert h.hub.rooms.get("r").members["alice"] is h.clients["new"]
    # the replaced session is gone from the room for good
    h.hub.disconnect(h.clients["old"])
    assert h.take("bob") == []


def test_replacement_does_not_count_against_a_full_room() -> None:
    h = token_hub(limits=Limits(max_participants=1))
    h.join("old", "r", token=token("alice"))
    assert h.join("new", "r", token=token("alice"))["userId"] == "alice"


def test_an_unverified_joiner_cannot_take_a_verified_id_in_open_mode() -> None:
    h = Harness(admission=Admission(AuthMode.OPEN, VERIFIER))
    h.join("real", "r", token=token("alice"))
    h.connect("squatter")
    h.send("squatter", {"type": "join-room", "room": "r", "userId": "alice"})
    assert h.take("squatter")[0]["code"] == "user-id-taken"


def test_too_many_rooms() -> None:
    h = Harness(limits=Limits(max_rooms=2))
    h.join("a", "r1")
    h.join("b", "r2")
    h.join("c", "r1")
    h.connect("d")
    h.send("d", {"type": "join-room", "room": "r3", "ref": 9})
    assert h.take("d") == [
        {
            "type": "error",
            "code": "too-many-rooms",
            "message": "the server holds as many rooms as it may",
            "ref": 9,
        }
    ]
    h.send("a", {"type": "leave-room"})
    h.send("b", {"type": "leave-room"})
    assert h.join("d", "r3")["room"] == "r3"


def test_ice_servers_in_room_joined_and_renewed_before_expiry() -> None:
    wall = [1_000.0]
    config = IceServerConfig(
        turn_uris=["turn:127.0.0.1:3478"],
        turn_secret="s",
        turn_ttl=100,
        wall_clock=lambda: wall[0],
    )
    h = Harness(ice_servers=config)
    joined = h.join("a", "r", "alice")
    assert joined["iceServersExpireAt"] == 1_100
    assert joined["iceServers"][0]["username"] == "1100:alice"
    h.clock.now += 74
    wall[0] += 74
    h.hub.tick()
    assert h.take("a") == []
    assert h.hub.next_deadline() == h.clock.now + 1
    h.clock.now += 1
    wall[0] += 1
    h.hub.tick()
    (pushed,) = h.take("a")
    assert pushed["type"] == "ice-servers"
    assert pushed["iceServersExpireAt"] == 1_175
    assert pushed["iceServers"][0]["username"] == "1175:alice"
    # and again, 75 s later, while the member stays
    h.clock.now += 75
    h.hub.tick()
    assert [m["type"] for m in h.take("a")] == ["ice-servers"]
    h.send("a", {"type": "leave-room"})
    assert [m["type"] for m in h.take("a")] == ["room-left"]
    h.clock.now += 1000
    h.hub.tick()
    assert h.take("a") == []


def test_open_mode_messages_are_unchanged() -> None:
    h = Harness()
    h.join("a", "r", "alice")
    joined = h.join("b", "r", "bob")
    assert joined == {
        "type": "room-joined",
        "room": "r",
        "userId": "bob",
        "sessionId": "s2",
        "participants": [{"userId": "alice", "polite": True, "status": "online"}],
        "history": [],
        "lastSeq": 0,
        "resumeToken": joined["resumeToken"],
    }
    assert h.take("a") == [
        {"type": "user-joined", "userId": "bob", "polite": False, "status": "online"}
    ]


def test_a_token_shown_at_connect_admits_until_its_expiry_only() -> None:
    wall = [0.0]
    admission = Admission(AuthMode.TOKEN, VERIFIER, wall_clock=lambda: wall[0])
    h = Harness(admission=admission)
    identity = VERIFIER.verify(token("alice", ttl=600))
    assert identity.expires_at is not None
    h.hub.connect("a", identity)
    h.clients["a"] = next(iter(h.hub.sessions.values()))
    wall[0] = identity.expires_at
    assert h.join("a", "r1")["userId"] == "alice"
    wall[0] = identity.expires_at + 60
    h.send("a", {"type": "join-room", "room": "r2", "ref": 1})
    assert h.take("a")[0]["code"] == "token-expired"
    assert h.join("a", "r2", token=token("alice"))["room"] == "r2"


TOKENS = [
    token("alice", ["r1", "r2"]),
    token("alice", "r1", grants=["join", "hidden"]),
    token("bob", "*", grants=["join", "chat", "admin"]),
    token("carol", "r*", grants=["join", "signal", "hidden", "admin"]),
    token("dave", "r2", ttl=-60),
    "forged.token.value",
]

hub_messages = st.one_of(
    st.builds(
        lambda room, user, tok: {"type": "join-room", "room": room, "userId": user, "token": tok},
        st.sampled_from(["r1", "r2", "r3"]),
        st.sampled_from([None, "alice", "bob", "mallory"]),
        st.sampled_from([None, *TOKENS]),
    ),
    st.builds(lambda: {"type": "leave-room"}),
    st.builds(lambda text: {"type": "chat", "message": text}, st.text(max_size=5)),
    st.builds(
        lambda user: {"type": "signal", "targetUserId": user, "signal": {"x": 1}},
        st.sampled_from(["alice", "bob", "carol", "nobody"]),
    ),
    st.builds(
        lambda user: {"type": "remove-participant", "userId": user},
        st.sampled_from(["alice", "bob", "carol"]),
    ),
    st.builds(lambda: {"type": "end-room"}),
)


@settings(max_examples=150, deadline=None)
@given(
    st.sampled_from([AuthMode.OPEN, AuthMode.TOKEN]),
    st.lists(
        st.tuples(st.sampled_from(["c1", "c2", "c3", "c4"]), hub_messages | st.just("bye")),
        max_size=40,
    ),
)
def test_any_sequence_of_messages_keeps_the_hub_consistent(mode: AuthMode, steps: list) -> None:
    h = Harness(admission=Admission(mode, VERIFIER), limits=Limits(max_participants=3))
    for name in ("c1", "c2", "c3", "c4"):
        h.connect(name)
    for name, message in steps:
        session = h.clients[name]
        if message == "bye":
            h.hub.disconnect(session)
            h.connect(name)
            continue
        h.send(name, {key: value for key, value in message.items() if value is not None})
        for sent in h.take(name):
            if sent["type"] == "error":
                assert sent["code"] in {code.value for code in ErrorCode}
    # every room member is a live session that knows it is in that room, once
    for room in h.hub.rooms:
        assert room.members
        for user_id, member in room.members.items():
            assert member.room is room
            assert member.user_id == user_id
            assert not member.closed
    for session in h.hub.sessions.values():
        if session.room is not None:
            assert session.room.members.get(session.user_id or "") is session


def test_the_renewal_queue_stays_the_size_of_the_live_sessions() -> None:
    config = IceServerConfig(turn_uris=["turn:t"], turn_secret="s", turn_ttl=3600)
    h = Harness(ice_servers=config)
    h.join("stays", "r", "stays")
    for i in range(500):
        h.clock.now += 0.1  # within the message rate
        h.join("churn", f"room-{i % 7}", "churn")  # each join leaves the last room
    assert h.hub.pending_deadlines <= 2 * len(h.hub.sessions) + 65
    h.take("stays")
    h.take("churn")
    h.clock.now += 3600
    h.hub.tick()
    # the one who stayed, and the last join: once each
    assert [m["type"] for m in h.take("stays")] == ["ice-servers"]
    assert [m["type"] for m in h.take("churn")] == ["ice-servers"]


def test_public_key_files_of_other_kinds_are_refused(tmp_path) -> None:
    from cryptography.hazmat.primitives import serialization

    p384 = ec.generate_private_key(ec.SECP384R1()).public_key()
    path = tmp_path / "p384.pem"
    path.write_bytes(
        p384.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    with pytest.raises(KeyConfigError, match="neither an Ed25519 nor a P-256"):
        VerificationKeys.load(None, path)
    (tmp_path / "junk.pem").write_text("junk")
    with pytest.raises(KeyConfigError, match="not a PEM public key"):
        VerificationKeys.load(None, tmp_path / "junk.pem")
    with pytest.raises(KeyConfigError, match="cannot read"):
        VerificationKeys.load(None, tmp_path / "absent.pem")
