"""selinon_like.watchdog: an overdue call's socket is shut down; a call that ends in time is
never touched, and release tells which happened."""

from __future__ import annotations

import socket
import time

from selinon_like.watchdog import Watchdog


def test_an_overdue_call_has_its_socket_shut_down() -> None:
    watchdog = Watchdog()
    ours, server = socket.socketpair()
    with ours, server:
        token = watchdog.watch(ours.fileno(), 0.2)
        began = time.monotonic()
        ours.settimeout(5)  # the bound of this test, not the mechanism under test
        assert ours.recv(1) == b""  # the blocking read returns: shut down under it
        elapsed = time.monotonic() - began
        assert watchdog.release(token) is True
        assert 0.15 <= elapsed < 1.0
        # Shut down, not closed: the descriptor is still ours to close.
        assert ours.fileno() != -1


def test_a_call_that_ends_in_time_is_left_alone() -> None:
    watchdog = Watchdog()
    ours, server = socket.socketpair()
    with ours, server:
        token = watchdog.watch(ours.fileno(), 0.2)
        assert watchdog.release(token) is False
        time.sleep(0.4)
        server.sendall(b"x")
        assert ours.recv(1) == b"x"
        assert watchdog.release(token) is False  # releasing twice is harmless


def test_a_later_shorter_deadline_is_not_missed() -> None:
    watchdog = Watchdog()
    first, first_peer = socket.socketpair()
    second, second_peer = socket.socketpair()
    with first, first_peer, second, second_peer:
        long_token = watchdog.watch(first.fileno(), 30)
        short_token = watchdog.watch(second.fileno(), 0.1)
        second.settimeout(5)
        began = time.monotonic()
        assert second.recv(1) == b""
        assert time.monotonic() - began < 1.0
        assert watchdog.release(short_token) is True
        assert watchdog.release(long_token) is False
