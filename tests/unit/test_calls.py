"""The call state machine on its own: every transition, every illegal move."""

from __future__ import annotations

import itertools

import pytest

from hubbub.core.calls import (
    ILLEGAL,
    TRANSITIONS,
    Call,
    CallError,
    CallMove,
    CallNotActive,
    CallNotRinging,
    CallRegistry,
    CallState,
    NoSuchCall,
    NotYourMove,
    Party,
)
from hubbub.protocol.errors import ErrorCode

RINGING, ACTIVE, ENDED = CallState.RINGING, CallState.ACTIVE, CallState.ENDED
CALLER, CALLEE, SERVER = Party.CALLER, Party.CALLEE, Party.SERVER

# Written out by hand, not read from the table: (state, move, by) -> (next, reason).
LEGAL = {
    (RINGING, CallMove.ACCEPT, CALLEE): (ACTIVE, None),
    (RINGING, CallMove.DECLINE, CALLEE): (ENDED, "declined"),
    (RINGING, CallMove.CANCEL, CALLER): (ENDED, "cancelled"),
    (RINGING, CallMove.TIMEOUT, SERVER): (ENDED, "missed"),
    (RINGING, CallMove.CALLER_GONE, SERVER): (ENDED, "cancelled"),
    (RINGING, CallMove.CALLEE_GONE, SERVER): (ENDED, "missed"),
    (ACTIVE, CallMove.HANG_UP, CALLER): (ENDED, "hung-up"),
    (ACTIVE, CallMove.HANG_UP, CALLEE): (ENDED, "hung-up"),
    (ACTIVE, CallMove.LEFT, SERVER): (ENDED, "left"),
    (ACTIVE, CallMove.CALLER_GONE, SERVER): (ENDED, "disconnected"),
    (ACTIVE, CallMove.CALLEE_GONE, SERVER): (ENDED, "disconnected"),
}

CLIENT_MOVES = [CallMove.ACCEPT, CallMove.DECLINE, CallMove.CANCEL, CallMove.HANG_UP]
SERVER_MOVES = [m for m in CallMove if m not in CLIENT_MOVES]

# Every client move that is not legal, and what it gets.
REFUSED = {
    (RINGING, CallMove.ACCEPT, CALLER): (NotYourMove, ErrorCode.FORBIDDEN),
    (RINGING, CallMove.DECLINE, CALLER): (NotYourMove, ErrorCode.FORBIDDEN),
    (RINGING, CallMove.CANCEL, CALLEE): (NotYourMove, ErrorCode.FORBIDDEN),
    (RINGING, CallMove.HANG_UP, CALLER): (CallNotActive, ErrorCode.CALL_NOT_ACTIVE),
    (RINGING, CallMove.HANG_UP, CALLEE): (CallNotActive, ErrorCode.CALL_NOT_ACTIVE),
    (ACTIVE, CallMove.ACCEPT, CALLER): (NotYourMove, ErrorCode.FORBIDDEN),
    (ACTIVE, CallMove.ACCEPT, CALLEE): (CallNotRinging, ErrorCode.CALL_NOT_RINGING),
    (ACTIVE, CallMove.DECLINE, CALLER): (NotYourMove, ErrorCode.FORBIDDEN),
    (ACTIVE, CallMove.DECLINE, CALLEE): (CallNotRinging, ErrorCode.CALL_NOT_RINGING),
    (ACTIVE, CallMove.CANCEL, CALLER): (CallNotRinging, ErrorCode.CALL_NOT_RINGING),
    (ACTIVE, CallMove.CANCEL, CALLEE): (NotYourMove, ErrorCode.FORBIDDEN),
    (ENDED, CallMove.ACCEPT, CALLEE): (NoSuchCall, ErrorCode.NO_SUCH_CALL),
    (ENDED, CallMove.DECLINE, CALLEE): (NoSuchCall, ErrorCode.NO_SUCH_CALL),
    (ENDED, CallMove.CANCEL, CALLER): (NoSuchCall, ErrorCode.NO_SUCH_CALL),
    (ENDED, CallMove.HANG_UP, CALLER): (NoSuchCall, ErrorCode.NO_SUCH_CALL),
    (ENDED, CallMove.HANG_UP, CALLEE): (NoSuchCall, ErrorCode.NO_SUCH_CALL),
    (ENDED, CallMove.ACCEPT, CALLER): (NotYourMove, ErrorCode.FORBIDDEN),
    (ENDED, CallMove.DECLINE, CALLER): (NotYourMove, ErrorCode.FORBIDDEN),
    (ENDED, CallMove.CANCEL, CALLEE): (NotYourMove, ErrorCode.FORBIDDEN),
}


def call_in(state: CallState) -> Call:
    call = Call("c1", "alice", "s-alice", "bob", ends_ringing_at=30.0)
    if state is not RINGING:
        call.apply(CallMove.ACCEPT, CALLEE)
    if state is ENDED:
        call.apply(CallMove.HANG_UP, CALLER)
    assert call.state is state
    return call


@pytest.mark.parametrize(("state", "move", "by"), list(LEGAL))
def test_every_transition(state: CallState, move: CallMove, by: Party) -> None:
    call = call_in(state)
    assert call.apply(move, by) is True
    assert (call.state, call.reason if call.state is ENDED else None) == LEGAL[state, move, by]


@pytest.mark.parametrize(
    ("state", "move", "by"),
    [
        (state, move, by)
        for state, move, by in itertools.product(CallState, CLIENT_MOVES, (CALLER, CALLEE))
        if (state, move, by) not in LEGAL
    ],
)
def test_every_illegal_client_move_is_refused_with_its_code(
    state: CallState, move: CallMove, by: Party
) -> None:
    call = call_in(state)
    before = (call.state, call.reason)
    error_type, code = REFUSED[state, move, by]
    with pytest.raises(error_type) as raised:
        call.apply(move, by, ref="r7")
    assert isinstance(raised.value, CallError)
    assert raised.value.code == code
    assert raised.value.ref == "r7"
    assert raised.value.message  # a text for the client
    assert (call.state, call.reason) == before  # a refused move changes nothing


@pytest.mark.parametrize(
    ("state", "move"),
    [
        (state, move)
        for state, move in itertools.product(CallState, SERVER_MOVES)
        if (state, move, SERVER) not in LEGAL
    ],
)
def test_server_moves_that_do_not_apply_are_ignored(state: CallState, move: CallMove) -> None:
    """A ring timeout after the answer, a room left before there was one..."""
    call = call_in(state)
    before = (call.state, call.reason)
    assert call.apply(move) is False
    assert (call.state, call.reason) == before


def test_the_table_holds_exactly_the_legal_transitions() -> None:
    legal = {(state, move) for state, move, _ in LEGAL}
    assert set(TRANSITIONS) == legal
    # ILLEGAL covers every client move the table leaves out, and nothing legal.
    for state, move in itertools.product(CallState, CLIENT_MOVES):
        assert ((state, move) in ILLEGAL) != ((state, move) in TRANSITIONS)


def test_parties_are_users() -> None:
    call = call_in(RINGING)
    assert call.party("alice") is CALLER
    assert call.party("bob") is CALLEE
    assert call.party("mallory") is None
    assert call.party(None) is None


def test_registry_finds_calls_by_id_user_and_room_and_forgets_them() -> None:
    calls = CallRegistry()
    call = Call("c1", "alice", "s1", "bob", ends_ringing_at=30.0)
    calls.place(call)
    assert calls.get("c1") is call
    assert calls.of_user("alice") is call
    assert calls.of_user("bob") is call
    assert calls.of_user("carol") is None
    call.apply(CallMove.ACCEPT, CALLEE)
    calls.accepted(call, "call-room")
    assert calls.in_room("call-room") is call
    assert len(calls) == 1
    calls.forget(call)
    assert len(calls) == 0
    assert calls.get("c1") is None
    assert calls.of_user("alice") is None
    assert calls.in_room("call-room") is None
