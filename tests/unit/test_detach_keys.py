"""Ctrl-P Ctrl-Q on an attached TTY (runtime/attach.split_detach): detach, and any
other byte after a Ctrl-P goes on to the container as docker sends it."""

from stackd.runtime.attach import split_detach


def test_the_detach_keys_end_the_relay_and_what_came_before_is_sent() -> None:
    assert split_detach(b"", b"ls\r\x10\x11more") == (b"ls\r", b"", True)


def test_a_ctrl_p_at_the_end_is_held_until_the_next_byte() -> None:
    assert split_detach(b"", b"abc\x10") == (b"abc", b"\x10", False)
    assert split_detach(b"\x10", b"\x11") == (b"", b"", True)
    assert split_detach(b"\x10", b"x") == (b"\x10x", b"", False)


def test_plain_input_passes_untouched() -> None:
    assert split_detach(b"", b"\x03\x04hello") == (b"\x03\x04hello", b"", False)
