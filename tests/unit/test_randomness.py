"""Tokens from the pooled CSPRNG: the right shape, never repeated, not shared with a fork."""

from __future__ import annotations

import base64
import os

from hubbub import randomness


def test_tokens_have_the_shape_of_the_secrets_module() -> None:
    url_token = randomness.token_urlsafe(12)
    assert len(url_token) == 16
    assert len(base64.urlsafe_b64decode(url_token)) == 12
    assert len(randomness.token_urlsafe(18)) == 24
    hex_token = randomness.token_hex(4)
    assert len(hex_token) == 8
    int(hex_token, 16)


def test_no_bytes_are_handed_out_twice_across_refills() -> None:
    count = 3 * randomness.BLOCK_BYTES // 12
    tokens = {randomness.token_urlsafe(12) for _ in range(count)}
    assert len(tokens) == count
    assert len(randomness.random_bytes(2 * randomness.BLOCK_BYTES)) == 2 * randomness.BLOCK_BYTES


def test_a_forked_child_does_not_reuse_the_parents_block() -> None:
    randomness.random_bytes(1)  # the parent holds a block with bytes left
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: send what it would hand out next, and leave
        os.write(write_end, randomness.random_bytes(32))
        os._exit(0)
    os.close(write_end)
    from_child = os.read(read_end, 32)
    os.close(read_end)
    os.waitpid(pid, 0)
    assert len(from_child) == 32
    assert from_child != randomness.random_bytes(32)
