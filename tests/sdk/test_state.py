"""hubbub.client's state machine with no network: server frames in, frames to send
and events out, time on a hand clock (docs/python.md; docs/protocol.md, "A client's
reconnect loop")."""

from __future__ import annotations

import random

import msgspec
import pytest

from hubbub.client import (
    Backoff,
    ChatAck,
    ChatGap,
    ChatMessage,
    Closed,
    ConnectError,
    Disconnected,
    History,
    JoinRefused,
    NotConnected,
    NotificationReceived,
    Participant,
    PresenceChanged,
    Reconnected,
    RequestFailed,
    Resumed,
    RoomJoined,
    ServerError,
    ServerMessage,
    TypingChanged,
    UnreadNotifications,
    UserJoined,
    UserLeft,
)
from hubbub.client import events as sdk
from hubbub.client.state import MOVES, IllegalMove, Phase
from hubbub.protocol import messages as protocol
from hubbub.protocol.errors import (
    FINAL_CLOSE_CODES,
    RETRIED_CHAT_ERRORS,
    RETRIED_REJOIN_ERRORS,
    CloseCode,
    ErrorCode,
)
from tests.sdk.state_driver import (
    StateDriver,
    chat_ack,
    error,
    joined_driver,
    resumed,
    room_joined,
    stored,
)

# -- joining ---------------------------------------------------------------------


def test_start_connects_joins_and_answers_with_room_joined() -> None:
    d = StateDriver(token="t0k", join_fields={"name": "Alice"})
    d.start(connect=False)
    assert d.wants_connection
    assert d.state.phase is Phase.CONNECTING
    d.connect()
    assert d.sent() == [
        {
            "name": "Alice",
            "type": "join-room",
            "room": "r",
            "userId": "alice",
            "token": "t0k",
            "ref": "join",
        }
    ]
    bob = {"userId": "bob", "polite": False, "status": "away"}
    d.server({"type": "notifications", "notifications": []})  # before the reply: kept
    d.server(room_joined(participants=[bob], last_seq=3, history=[stored(3)]))
    joined, unread = d.events()
    assert isinstance(joined, RoomJoined)
    assert joined.last_seq == 3
    assert unread == UnreadNotifications(notifications=[])
    assert d.answers == {"join": joined}
    assert d.state.phase is Phase.OPEN
    assert d.state.mirror.participants == {"bob": Participant("bob", False, status="away")}
    assert d.state.mirror.session_id == "s1"
    assert d.state.stores_chat
    assert d.state.last_n == 2


def test_a_refused_first_join_is_the_applications_and_not_retried() -> None:
    d = StateDriver()
    d.start()
    d.sent()
    d.server(error("user-id-taken", ref="join"))
    refused = d.answers["join"]
    assert isinstance(refused, JoinRefused)
    assert refused.code == "user-id-taken"
    assert d.state.phase is Phase.CLOSED
    assert d.closes == 1
    assert d.finished is not None
    d.advance(3600)
    assert not d.wants_connection


def test_a_first_join_waits_for_a_user_id_held_for_a_session_that_may_resume() -> None:
    # A program restarted after a crash: its old session holds the id for a while.
    d = StateDriver()
    d.start()
    join = d.sent()
    d.server(error("user-id-taken", ref="join", heldForMs=12_000))
    assert d.events() == [sdk.WaitingForUserId(user_id="alice", seconds=12.25)]
    assert "join" not in d.answers
    assert d.state.phase is Phase.JOINING
    d.advance(12.0)
    assert d.sent() == []
    d.advance(0.3)
    assert d.sent() == join  # again, on the same connection
    d.server(room_joined())
    assert isinstance(d.answers["join"], RoomJoined)
    assert d.state.phase is Phase.OPEN
    assert d.closes == 0


def test_a_held_user_id_is_waited_for_only_so_long_and_never_without_heldformms() -> None:
    d = StateDriver(held_id_wait=20.0)
    d.start()
    d.sent()
    d.server(error("user-id-taken", ref="join", heldForMs=15_000))
    d.advance(15.25)
    assert d.sent()[0]["type"] == "join-room"
    # Held again (the old session came back and went again): 30 s in all is too long.
    d.server(error("user-id-taken", ref="join", heldForMs=15_000))
    refused = d.answers["join"]
    assert isinstance(refused, JoinRefused)
    assert refused.code == "user-id-taken"
    assert d.state.phase is Phase.CLOSED

    # A member that is there (no heldForMs): refused at once, as ever.
    d = StateDriver()
    d.start()
    d.sent()
    d.server(error("user-id-taken", ref="join"))
    assert isinstance(d.answers["join"], JoinRefused)


def test_a_connection_lost_while_waiting_for_a_held_id_fails_the_start() -> None:
    d = StateDriver()
    d.start()
    d.sent()
    d.server(error("user-id-taken", ref="join", heldForMs=5_000))
    d.lose()
    assert isinstance(d.answers["join"], (ConnectError, Closed))
    d.advance(10)
    assert d.sent() == []


def test_a_first_connection_that_fails_or_stays_silent_fails_the_start() -> None:
    d = StateDriver()
    d.start(connect=False)
    d.fail_connect("cannot reach it")
    assert isinstance(d.answers["join"], ConnectError)
    assert d.state.closed

    d = StateDriver()
    d.start()
    d.advance(9.9)
    assert d.answers == {}
    d.advance(0.1)
    assert isinstance(d.answers["join"], TimeoutError)
    assert d.closes == 1

    d = StateDriver()
    d.start()
    d.lose(1011, "oops")
    assert isinstance(d.answers["join"], ConnectError)


def test_the_status_set_is_asked_for_again_on_a_fresh_join() -> None:
    d = joined_driver()
    d.state.keep_status("busy")
    assert d.state.mirror.status == "busy"
    d.shut_down()
    d.wait_for_reconnection()
    assert d.sent()[0]["status"] == "busy"


# -- requests ----------------------------------------------------------------------


def test_replies_are_matched_to_their_request_by_ref() -> None:
    d = joined_driver()
    first = d.request({"type": "ping"})
    second = d.request({"type": "history", "limit": 2})
    third = d.request({"type": "call-accept", "callId": "x"})
    assert [m["ref"] for m in d.sent()] == [first, second, third]
    assert len({first, second, third}) == 3
    d.server({"type": "history", "room": "r", "messages": [stored(1)], "ref": second})
    d.server({"type": "pong", "ref": first})
    d.server(error("no-such-call", ref=third))
    assert isinstance(d.answers[second], History)
    assert d.answers[first] == sdk.Pong(ref=first)
    refused = d.answers[third]
    assert isinstance(refused, RequestFailed)
    assert refused.code == "no-such-call"
    # the pong and the page are the caller's alone; an error is an event as well
    assert d.events() == [ServerError(code="no-such-call", message="no-such-call!", ref=third)]


def test_a_request_times_out_and_its_late_reply_is_an_event() -> None:
    d = joined_driver()
    ref = d.request({"type": "ping"})
    d.advance(10)
    assert isinstance(d.answers.pop(ref), TimeoutError)
    d.server({"type": "pong", "ref": ref})
    assert d.events() == [sdk.Pong(ref=ref)]
    assert d.answers == {}


def test_an_abandoned_request_leaves_its_reply_to_the_events() -> None:
    d = joined_driver()
    ref = d.request({"type": "call-request", "targetUserId": "bob"})
    d.state.abandon(ref)
    ringing = {"type": "call-ringing", "callId": "c", "targetUserId": "bob", "ref": ref}
    d.server(ringing)
    assert d.answers == {}
    assert d.events() == [sdk.CallRinging(call_id="c", target_user_id="bob", ref=ref)]


def test_requests_wait_for_no_reconnection_and_fail_with_the_connection() -> None:
    d = joined_driver()
    ref = d.request({"type": "ping"})
    d.lose()
    assert isinstance(d.answers[ref], NotConnected)
    with pytest.raises(NotConnected):
        d.state.request({"type": "ping"}, d.now)
    with pytest.raises(NotConnected):
        d.state.send({"type": "typing", "active": True})
    d.close()
    with pytest.raises(Closed):
        d.state.send({"type": "typing", "active": True})
    with pytest.raises(Closed):
        d.state.chat("too late", d.now)


def test_joining_another_room_replaces_the_mirror() -> None:
    d = joined_driver()
    ref = d.request(d.state.join_message("two"))
    assert d.sent() == [{"type": "join-room", "room": "two", "userId": "alice", "ref": ref}]
    carol = {"userId": "carol", "polite": True, "status": "online"}
    d.server(room_joined(room="two", ref=ref, participants=[carol], session="s2"))
    assert isinstance(d.answers[ref], RoomJoined)
    assert [type(e) for e in d.events()] == [RoomJoined]
    assert d.state.mirror.room == "two"
    assert set(d.state.mirror.participants) == {"carol"}


# -- chat: the outbox -------------------------------------------------------------


def test_a_chat_is_sent_with_a_client_id_and_settled_by_its_ack() -> None:
    d = joined_driver()
    key = d.chat("hello")
    assert d.sent() == [{"type": "chat", "message": "hello", "clientId": "p-1", "ref": "chat:p-1"}]
    assert key == "chat:p-1"
    assert [e.message for e in d.state.outbox] == ["hello"]
    d.server(chat_ack("p-1", 7))
    ack = d.answers[key]
    assert isinstance(ack, ChatAck)
    assert ack.seq == 7
    assert d.events() == [ack]
    assert len(d.state.outbox) == 0
    assert d.state.mirror.last_seq == 7
    d.advance(60)
    assert d.sent() == []


def test_a_chat_with_no_answer_goes_again_with_the_same_client_id() -> None:
    d = joined_driver()
    d.chat("anyone?")
    first = d.sent()
    d.advance(9.9)
    assert d.sent() == []
    d.advance(0.1)
    assert d.sent() == first
    d.advance(10)
    assert d.sent() == first
    d.server(chat_ack("p-1", 1, duplicate=True))
    assert d.answers["chat:p-1"].duplicate
    d.advance(60)
    assert d.sent() == []


@pytest.mark.parametrize("code", ["store-unavailable", "rate-limited"])
def test_a_chat_refusal_that_passes_is_retried_after_a_delay(code: str) -> None:
    d = joined_driver()
    d.chat("again")
    frame = d.sent()
    d.server(error(code, ref="chat:p-1"))
    assert d.events() == []  # not an event: retried
    assert d.answers == {}
    deadline = d.state.next_deadline()
    assert deadline is not None
    assert 0 < deadline - d.now <= 1.0  # the backoff's first delay
    d.advance(deadline - d.now)
    assert d.sent() == frame
    d.server(chat_ack("p-1", 1))
    assert isinstance(d.answers["chat:p-1"], ChatAck)


def test_a_final_chat_refusal_fails_the_chat() -> None:
    d = joined_driver()
    d.chat("x" * 9000)
    d.server(error("too-large", ref="chat:p-1"))
    refused = d.answers["chat:p-1"]
    assert isinstance(refused, RequestFailed)
    assert refused.code == "too-large"
    assert len(d.state.outbox) == 0
    assert d.events() == []
    d.advance(60)
    assert d.sent()[1:] == []


def test_not_in_room_holds_the_chat_until_the_client_is_in_a_room_again() -> None:
    d = joined_driver()
    leave = d.request({"type": "leave-room"})
    d.chat("while leaving")
    d.sent()
    d.server({"type": "room-left", "room": "r", "ref": leave})
    assert not d.state.mirror.in_room
    d.server(error("not-in-room", ref="chat:p-1"))
    d.advance(600)
    assert d.sent() == []  # no use sending it out of a room
    assert d.answers.get("chat:p-1") is None
    join = d.request(d.state.join_message("r"))
    assert [m["type"] for m in d.sent()] == ["join-room"]
    d.server(room_joined(ref=join, session="s2"))
    assert d.sent() == [
        {"type": "chat", "message": "while leaving", "clientId": "p-1", "ref": "chat:p-1"}
    ]
    d.server(chat_ack("p-1", 1))
    assert isinstance(d.answers["chat:p-1"], ChatAck)


def test_not_in_room_held_across_a_reconnection_goes_once_back_in() -> None:
    d = joined_driver()
    d.server({"type": "room-left", "room": "r"})  # (a leave of its own, sent raw)
    d.chat("out of the room")
    d.server(error("not-in-room", ref="chat:p-1"))
    d.sent()
    d.shut_down()
    d.wait_for_reconnection()
    assert [m["type"] for m in d.sent()] == ["join-room"]
    d.server(room_joined(session="s2"))
    assert [m.get("clientId") for m in d.sent()] == ["p-1"]


def test_not_in_room_while_in_the_room_is_retried_after_a_delay() -> None:
    d = joined_driver()
    d.chat("crossed something")
    frame = d.sent()
    d.server(error("not-in-room", ref="chat:p-1"))
    d.advance(1.0)
    assert d.sent() == frame


def test_chat_sent_while_down_goes_after_the_rejoin() -> None:
    d = joined_driver()
    d.shut_down()
    key = d.chat("while down")
    assert key == "chat:p-1"
    assert d.sent() == []
    d.wait_for_reconnection()
    d.sent()
    d.server(room_joined(session="s2"))
    assert [m.get("clientId") for m in d.sent()] == ["p-1"]


def test_on_a_server_that_stores_nothing_chat_is_sent_once() -> None:
    d = StateDriver()
    d.start()
    d.server(room_joined(last_seq=None))
    d.sent()
    assert not d.state.stores_chat
    assert d.chat("plain") is None
    assert d.sent() == [{"type": "chat", "message": "plain"}]
    d.advance(60)
    assert d.sent() == []


# -- the reconnect loop ------------------------------------------------------------


def test_a_lost_connection_is_resumed_and_the_outbox_waits_for_the_replay() -> None:
    d = joined_driver()
    d.server({"type": "user-joined", "userId": "bob", "polite": False, "status": "online"})
    d.chat("in flight")
    d.sent()
    assert d.state.last_n == 2
    d.lose()  # no close frame
    assert d.events() == [UserJoined("bob", False), Disconnected(None, "connection lost", True)]
    assert d.state.phase is Phase.WAITING
    d.wait_for_reconnection()
    assert d.sent() == [
        {
            "type": "resume",
            "sessionId": "s1",
            "resumeToken": "token-s1",
            "lastN": 2,
            "ref": "resume",
        }
    ]
    d.server(resumed(last_n=4), n=None)
    assert d.events() == [Resumed(attempts=1, missed=2)]
    assert d.sent() == []  # not before the replay: its chat-ack may be in it
    d.server({"type": "user-left", "userId": "bob"}, n=3)
    assert d.sent() == []
    d.server(error("store-unavailable", ref="chat:p-1"), n=4)
    assert d.events() == [UserLeft("bob")]
    assert [m.get("clientId") for m in d.sent()] == ["p-1"]  # the replay is in: sent again
    d.server({"type": "user-joined", "userId": "bob", "polite": False}, n=4)  # came before
    assert d.events() == []
    assert d.state.last_n == 4


def test_a_resume_whose_replay_is_empty_sends_the_outbox_at_once() -> None:
    d = joined_driver()
    d.chat("in flight")
    d.sent()
    d.lose()
    d.wait_for_reconnection()
    d.sent()
    d.server(resumed(last_n=1), n=None)
    assert [m.get("clientId") for m in d.sent()] == ["p-1"]


def test_a_refused_resume_joins_afresh_and_catches_up_from_the_history() -> None:
    d = joined_driver(max_catch_up=1000)
    d.server({"type": "chat", "message": "#1", "userId": "bob", "id": "m1", "seq": 1, "ts": 1})
    d.chat("mine")
    d.sent()
    d.events()
    d.lose()
    d.wait_for_reconnection()
    assert d.events() == [Disconnected(None, "connection lost", True)]
    assert d.sent()[0]["type"] == "resume"
    d.server(error("resume-failed", ref="resume", reason="unknown-session"))
    assert d.sent() == [{"type": "join-room", "room": "r", "userId": "alice", "ref": "join"}]
    # room-joined holds seqs 5 and 6 only; 2 to 4 come from a page of history
    d.server(room_joined(session="s2", last_seq=6, history=[stored(5), stored(6)]))
    assert d.sent() == [{"type": "history", "beforeSeq": 5, "limit": 3, "ref": "catch-up"}]
    assert d.state.phase is Phase.CATCHING_UP
    d.server({"type": "user-joined", "userId": "carol", "polite": False})  # meanwhile
    assert d.events() == []
    page = [stored(2), stored(3, user="alice", client_id="p-1"), stored(4)]
    d.server({"type": "history", "room": "r", "messages": page, "ref": "catch-up"})
    events = d.events()
    assert events[0] == Reconnected(attempts=1, resume_refused="unknown-session")
    assert isinstance(events[1], RoomJoined)
    # ours (p-1) is not handed back: its chat-ack comes to the resend
    assert [(e.seq, e.message) for e in events[2:5]] == [(2, "#2"), (4, "#4"), (5, "#5")]
    assert isinstance(events[5], ChatMessage)
    assert events[5].seq == 6
    assert events[6] == UserJoined("carol", False)
    assert len(events) == 7
    assert [m.get("clientId") for m in d.sent()] == ["p-1"]
    assert d.state.mirror.last_seq == 6
    assert d.state.phase is Phase.OPEN
    assert d.state.last_n == 4  # the refusal was n=1 of the new session


def test_a_catch_up_beyond_max_catch_up_reports_a_gap() -> None:
    d = joined_driver(max_catch_up=3)
    d.server({"type": "chat", "message": "#1", "userId": "bob", "id": "m1", "seq": 1, "ts": 1})
    d.shut_down()
    d.wait_for_reconnection()
    d.sent()
    d.server(room_joined(session="s2", last_seq=50, history=[stored(49), stored(50)]))
    assert d.sent() == [{"type": "history", "beforeSeq": 49, "limit": 1, "ref": "catch-up"}]
    d.server({"type": "history", "room": "r", "messages": [stored(48)], "ref": "catch-up"})
    events = d.events()
    assert [type(e) for e in events[:4]] == [ChatMessage, Disconnected, Reconnected, RoomJoined]
    assert events[4] == ChatGap(after_seq=1, before_seq=48)
    assert [e.seq for e in events[5:]] == [48, 49, 50]


def test_a_catch_up_page_refused_reports_the_gap_and_goes_on() -> None:
    d = joined_driver()
    d.server({"type": "chat", "message": "#1", "userId": "bob", "id": "m1", "seq": 1, "ts": 1})
    d.shut_down()
    d.wait_for_reconnection()
    d.sent()
    d.server(room_joined(session="s2", last_seq=9, history=[stored(9)]))
    d.server(error("store-unavailable", ref="catch-up"))
    events = d.events()
    assert ChatGap(after_seq=1, before_seq=9) in events
    assert d.state.phase is Phase.OPEN


def test_a_close_by_the_server_joins_afresh_after_its_hint() -> None:
    d = joined_driver()
    d.server({"type": "reconnect", "afterMs": 2500})
    d.lose(CloseCode.GOING_AWAY, "shutting down")
    assert d.events()[-1] == Disconnected(1001, "shutting down", True)
    d.advance(2.49)
    assert not d.wants_connection
    d.advance(0.01)
    d.connect()
    assert [m["type"] for m in d.sent()] == ["join-room"]  # no session to resume
    d.server(room_joined(session="s2"))
    assert d.events()[0] == Reconnected(attempts=1, resume_refused=None)


@pytest.mark.parametrize("code", sorted(FINAL_CLOSE_CODES))
def test_no_reconnection_after_a_final_close_code(code: int) -> None:
    d = joined_driver()
    d.chat("pending")
    d.lose(code, "the server's words")
    name = FINAL_CLOSE_CODES[CloseCode(code)]
    assert d.events() == [Disconnected(code, "the server's words", False, name=name)]
    assert d.state.closed
    assert d.finished == "the server's words"
    assert isinstance(d.answers["chat:p-1"], Closed)
    d.advance(3600)
    assert not d.wants_connection


@pytest.mark.parametrize("code", [None, 1001, 1011, 4001, 4008, 1010, 4999])
def test_a_reconnection_after_any_other_close(code: int | None) -> None:
    # The session may have outlived the connection (closed by a proxy, say): it is
    # asked back first, as docs/protocol.md's reconnect loop says.
    d = joined_driver()
    d.lose(code, "gone")
    assert d.events() == [Disconnected(code, "gone", True)]
    d.wait_for_reconnection()
    assert d.sent()[0]["type"] == "resume"


def test_a_final_close_during_a_reconnection_attempt_ends_it() -> None:
    d = joined_driver()
    d.lose()
    d.events()
    d.wait_for_reconnection()
    d.lose(CloseCode.RESUMED_ELSEWHERE, "resumed on another connection")
    assert d.events() == [
        Disconnected(4010, "resumed on another connection", False, name="resumed-elsewhere")
    ]
    assert d.state.closed


def test_reconnect_false_ends_on_any_drop() -> None:
    d = joined_driver(reconnect=False)
    d.lose()
    assert d.events() == [Disconnected(None, "connection lost", False)]
    assert d.state.closed


@pytest.mark.parametrize("code", sorted(RETRIED_REJOIN_ERRORS))
def test_a_rejoin_refusal_that_passes_keeps_trying(code: str) -> None:
    d = joined_driver()
    d.shut_down()
    d.wait_for_reconnection()
    d.sent()
    d.server(error(code, ref="join"))
    assert d.closes == 1
    assert d.state.phase is Phase.WAITING
    assert d.events()[1:] == []
    d.wait_for_reconnection()
    assert [m["type"] for m in d.sent()] == ["join-room"]
    d.server(room_joined(session="s3"))
    assert d.events()[0] == Reconnected(attempts=2, resume_refused=None)


def test_a_rejoin_refusal_that_does_not_pass_ends_the_client() -> None:
    d = joined_driver()
    d.shut_down()
    d.events()
    d.wait_for_reconnection()
    d.server(error("forbidden", ref="join"))
    assert d.events() == [ServerError(code="forbidden", message="forbidden!")]
    assert d.state.closed
    assert d.finished == "forbidden: forbidden!"


def test_failed_attempts_back_off_and_give_up_after_max_attempts() -> None:
    backoff = Backoff(base=1.0, max_delay=8.0, max_attempts=4, random=random.Random(3))
    d = joined_driver(backoff=backoff)
    d.lose()
    waits = []
    for _ in range(4):
        before = d.now
        d.advance_until(lambda: d.wants_connection)
        waits.append(d.now - before)
        d.fail_connect("unreachable")
    assert d.state.closed
    assert d.finished == "gave up reconnecting: unreachable"
    assert all(0.05 <= w <= bound for w, bound in zip(waits, [1, 2, 4, 8], strict=True))


def test_a_silent_rejoin_is_given_up_and_tried_again() -> None:
    d = joined_driver()
    d.shut_down()
    d.wait_for_reconnection()
    d.sent()
    d.advance(10)
    assert d.closes == 1
    assert d.state.phase is Phase.WAITING
    d.wait_for_reconnection()
    assert [m["type"] for m in d.sent()] == ["join-room"]


def test_a_resume_after_failed_attempts_is_still_a_resume() -> None:
    d = joined_driver()
    d.lose()
    d.advance_until(lambda: d.wants_connection)
    d.fail_connect()
    d.wait_for_reconnection()
    assert d.sent()[0]["type"] == "resume"


def test_close_fails_what_waits() -> None:
    d = joined_driver()
    ref = d.request({"type": "ping"})
    d.chat("unsent")
    d.close()
    assert isinstance(d.answers[ref], NotConnected)
    assert isinstance(d.answers["chat:p-1"], Closed)
    assert d.closes == 1
    assert d.finished == "closed"
    assert d.state.next_deadline() is None
    d.lose(1000, "bye")  # the close completing: nothing more
    assert d.events() == []


def test_a_connection_made_after_close_is_closed_again() -> None:
    d = StateDriver()
    d.start(connect=False)
    d.close()
    assert isinstance(d.answers["join"], Closed)
    d.state.connection_made(d.now)
    d.connected = True
    d._run()
    assert d.closes == 1
    assert d.sent() == []


# -- what the client keeps: the mirror, message numbers ---------------------------


def test_the_mirror_follows_the_room() -> None:
    d = joined_driver()
    d.server({"type": "user-joined", "userId": "bob", "polite": False, "status": "online"})
    d.server({"type": "presence", "userId": "bob", "status": "away"})
    assert d.state.mirror.participants["bob"].status == "away"
    d.server({"type": "participant-updated", "userId": "bob", "connection": "reconnecting"})
    assert d.state.mirror.participants["bob"].connection == "reconnecting"
    d.server({"type": "typing", "userId": "bob", "active": True})
    assert d.state.mirror.typing_users(d.now) == {"bob"}
    assert d.state.mirror.typing_users(d.now + 5) == set()
    d.server({"type": "chat", "message": "hi", "userId": "bob", "id": "m4", "seq": 4, "ts": 1})
    assert d.state.mirror.typing_users(d.now) == set()
    assert d.state.mirror.last_seq == 4
    d.server({"type": "user-left", "userId": "bob"})
    d.server({"type": "presence", "userId": "bob", "status": "offline", "lastSeen": 77})
    assert d.state.mirror.participants == {}
    assert d.state.mirror.offline == {"bob": 77}
    d.server({"type": "presence", "userId": "alice", "status": "busy"})
    assert d.state.mirror.status == "busy"
    events = d.events()
    assert PresenceChanged(status="offline", user_id="bob", last_seen=77) in events
    assert TypingChanged(user_id="bob", active=True) in events


def test_notifications_are_handed_over_once() -> None:
    d = joined_driver()
    note = {"id": 5, "ts": 1, "title": "hello"}
    d.server({"type": "notifications", "notifications": [note]})
    d.server({"type": "notification", **note})
    d.server({"type": "notification", "id": 6, "ts": 2})
    d.server({"type": "notification-read", "ids": [5]})
    assert list(d.state.mirror.unread) == [6]
    kinds = [type(e) for e in d.events()]
    assert kinds.count(NotificationReceived) == 1


def test_a_message_that_comes_twice_is_handled_once_and_junk_is_skipped() -> None:
    d = joined_driver()
    d.server({"type": "user-left", "userId": "x"}, n=2)
    d.server({"type": "user-left", "userId": "x"}, n=2)
    d.raw(b"not json")
    d.raw(b"[1, 2]")
    d.raw(b'{"no": "type"}')
    d.server({"type": "some-future-thing", "x": 1})
    assert d.events() == [UserLeft("x"), ServerMessage(type="some-future-thing", data={"x": 1})]
    assert d.state.last_n == 3


def test_only_the_moves_of_the_table_are_made() -> None:
    d = StateDriver()
    with pytest.raises(IllegalMove):
        d.state.connection_made(d.now)
    d.start()
    with pytest.raises(IllegalMove):
        d.state.start(d.now)
    assert Phase.OPEN not in MOVES[Phase.WAITING]
    assert MOVES[Phase.CLOSED] == frozenset()


# -- the rules and the wire come from hubbub.protocol ------------------------------


def test_the_rules_are_the_protocols() -> None:
    assert ErrorCode.NOT_IN_ROOM in RETRIED_CHAT_ERRORS
    assert {ErrorCode.STORE_UNAVAILABLE, ErrorCode.CLUSTER_UNAVAILABLE} <= RETRIED_REJOIN_ERRORS
    for code in RETRIED_CHAT_ERRORS:
        d = joined_driver()
        d.chat("x")
        d.server(error(code, ref="chat:p-1"))
        assert "chat:p-1" not in d.answers, code
    d = joined_driver()
    d.chat("x")
    d.server(error(ErrorCode.FORBIDDEN, ref="chat:p-1"))
    assert isinstance(d.answers["chat:p-1"], RequestFailed)


def test_what_the_client_sends_is_what_the_server_reads() -> None:
    """Every frame of the client's own decodes with the protocol's structs (the
    server's), and none of its fields is one the server would ignore."""
    d = joined_driver(token="tok")
    d.state.keep_status("away")
    frames = [d.state.join_message("r")]
    d.request({"type": "ping"})
    d.chat("hi")
    frames += d.sent()
    d.lose()
    d.wait_for_reconnection()
    frames += d.sent()
    d.server(error("resume-failed", ref="resume"))
    frames += d.sent()
    d.server(room_joined(session="s2", last_seq=5, history=[stored(5)]))
    frames += d.sent()
    kinds = ["join-room", "ping", "chat", "resume", "join-room", "history"]
    assert [f["type"] for f in frames] == kinds
    decoder = msgspec.json.Decoder(protocol.IncomingMessage)
    for frame in frames:
        decoded = decoder.decode(msgspec.json.encode(frame))
        read = {f.encode_name for f in msgspec.structs.fields(type(decoded))}
        assert set(frame) - {"type"} <= read, frame
