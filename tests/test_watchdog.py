"""selinon_like.watchdog: an overdue call's socket is shut down; a call that ends in time is
never touched, and release tells which happened."""

from __future__ import annotations

import socket
import sys
import threading
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


def test_a_call_registered_while_the_thread_waits_idle_wakes_it() -> None:
    watchdog = Watchdog()
    ours, server = socket.socketpair()
    with ours, server:
        watchdog.release(watchdog.watch(ours.fileno(), 30))  # the thread starts, then idles
        thread = watchdog._thread
        assert thread is not None
        time.sleep(0.3)  # past a pass and its sleep: waiting with no deadline now
        token = watchdog.watch(ours.fileno(), 0.1)
        ours.settimeout(5)
        assert ours.recv(1) == b""
        assert watchdog.release(token) is True


def test_a_release_racing_the_thread_never_loses_a_shut_down() -> None:
    """Calls released just as their deadline passes, from four threads: a release that says
    False leaves the socket working for good; one that says True returns after it was shut."""
    watchdog = Watchdog()
    failures: list[str] = []
    fired = [0]

    def calls(seed: int) -> None:
        ours, peer = socket.socketpair()
        try:
            for n in range(400):
                token = watchdog.watch(ours.fileno(), ((n * 7 + seed) % 5) / 2000)
                time.sleep(((n * 3 + seed) % 4) / 2000)  # the call, about as long
                if watchdog.release(token):
                    fired[0] += 1
                    if ours.recv(1) != b"":  # shut down before release returned
                        failures.append("a fired call's socket still read data")
                    ours.close()
                    peer.close()
                    ours, peer = socket.socketpair()
                else:  # never shut, neither now nor later (a later round would see it)
                    peer.sendall(b"x")
                    ours.settimeout(5)
                    if ours.recv(1) != b"x":
                        failures.append("a released call's socket was shut down")
        finally:
            ours.close()
            peer.close()

    threads = [threading.Thread(target=calls, args=(seed,)) for seed in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not failures
    assert watchdog._thread is not None and watchdog._thread.is_alive()
    assert fired[0] > 0 and not watchdog._calls and not watchdog._fired


def test_the_thread_survives_calls_coming_and_going_during_its_passes() -> None:
    """Calls register and release without the lock while the thread goes over them: a pass
    that iterated the live dict would die of "dictionary changed size during iteration",
    leaving every later call unbounded. Frequent thread switches make that likely here."""
    watchdog = Watchdog()
    ours, peer = socket.socketpair()
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)
    try:
        with ours, peer:
            waiting = [watchdog.watch(ours.fileno(), 60) for _ in range(2000)]

            def calls() -> None:
                end = time.monotonic() + 1.5
                while time.monotonic() < end:
                    watchdog.release(watchdog.watch(ours.fileno(), 0.001))

            threads = [threading.Thread(target=calls) for _ in range(4)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(60)
            assert watchdog._thread is not None and watchdog._thread.is_alive()
            assert not any(watchdog.release(token) for token in waiting)
        ours, peer = socket.socketpair()  # the calls above may have had that one shut
        with ours, peer:
            token = watchdog.watch(ours.fileno(), 0.05)  # and it still fires
            ours.settimeout(5)
            assert ours.recv(1) == b""
            assert watchdog.release(token) is True
    finally:
        sys.setswitchinterval(interval)
