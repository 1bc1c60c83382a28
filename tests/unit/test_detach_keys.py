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


def test_other_detach_keys_and_their_start_held_back() -> None:
    keys = b"\x18x"  # ctrl-x,x
    assert split_detach(b"", b"ab\x18", keys) == (b"ab", b"\x18", False)
    assert split_detach(b"\x18", b"x", keys) == (b"", b"", True)
    assert split_detach(b"\x18", b"y", keys) == (b"\x18y", b"", False)
    three = b"\x01\x02\x03"
    assert split_detach(b"", b"z\x01\x02", three) == (b"z", b"\x01\x02", False)


def test_docker_detach_key_names() -> None:
    import pytest

    from stackd.cli.detachkeys import parse_detach_keys

    assert parse_detach_keys("ctrl-p,ctrl-q") == b"\x10\x11"
    assert parse_detach_keys("ctrl-x,x") == b"\x18x"
    assert parse_detach_keys("ctrl-@,ctrl-[,ctrl-\\,ctrl-],ctrl-^,ctrl-_") == bytes(
        [0, 27, 28, 29, 30, 31])
    for bad in ("ctrl-1", "alt-x", "xy", ""):
        with pytest.raises(ValueError, match="is not a key"):
            parse_detach_keys(bad)
