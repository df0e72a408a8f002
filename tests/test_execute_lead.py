"""The lead before a load window (execute._lead): long enough for the pre-load steps, measured
rather than fixed (issue 28: a fixed 1.5 s before every run's first window was a second idle)."""

from __future__ import annotations

from orchestrator import execute


def test_the_first_window_is_led_by_the_steps_this_run_just_timed():
    # fast hosts: the floor, not a fixed 1.5 s
    assert execute._lead(None, round_trip=0.01, set_up_s=0.1) == execute.LEAD_MIN_S
    # slow hosts: three times their set-up steps
    assert execute._lead(None, round_trip=0.05, set_up_s=1.2) == 3 * 1.2
    # a slow round trip to the clients: five of them
    assert execute._lead(None, round_trip=0.4, set_up_s=0.2) == 5 * 0.4


def test_later_windows_are_led_by_the_pre_load_steps_timed_before_not_the_set_up():
    assert execute._lead(0.9, round_trip=0.01, set_up_s=0.05) == 3 * 0.9
    assert execute._lead(0.05, round_trip=0.01, set_up_s=2.0) == execute.LEAD_MIN_S
