"""Stopping cleanly: SIGTERM as Ctrl-C, and bookkeeping that a stop must not cut in half."""

import os
import signal

import pytest

from cwm.signals import interrupts_deferred, sigterm_as_interrupt


def test_sigterm_raises_keyboard_interrupt_inside():
    with pytest.raises(KeyboardInterrupt):
        with sigterm_as_interrupt():
            os.kill(os.getpid(), signal.SIGTERM)


@pytest.fixture
def ctrl_c_raises():
    """Ctrl-C raising KeyboardInterrupt, as in a foreground run (a background job ignores it)."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_deferred_block_runs_to_its_end_then_stops(sig, ctrl_c_raises):
    before = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}
    done = []
    with pytest.raises(KeyboardInterrupt):
        with sigterm_as_interrupt():
            with interrupts_deferred():
                os.kill(os.getpid(), sig)
                done.append("row")      # a stop here would leave the row without its counter
                done.append("counter")
            done.append("after")        # never reached: the stop comes at the block's end
    assert done == ["row", "counter"]
    assert {s: signal.getsignal(s) for s in before} == before   # handlers restored


def test_a_quiet_deferred_block_raises_nothing():
    with interrupts_deferred():
        pass


def test_an_ignored_sigint_stays_ignored():
    """A background job ignores Ctrl-C; a deferred block must not turn it into a stop."""
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        with interrupts_deferred():
            os.kill(os.getpid(), signal.SIGINT)
        assert signal.getsignal(signal.SIGINT) == signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, previous)
