"""Timing oracles: does a route answer in the same time whatever the account's state?

Medians of interleaved tries (drift on a shared machine hits every state alike); a systematic
gap shows in every round, a burst of load from elsewhere does not, so one round in ROUNDS
within the bound passes. The oracle the job queue closed was a 1.5x gap (~11 ms against
~17 ms for resend-verification), well outside the bound."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

TRIES = 20
MAX_MEDIAN_RATIO = 1.25
ROUNDS = 3


def _medians(sends: dict[str, Callable[[], object]]) -> tuple[dict[str, float], set]:
    samples: dict[str, list[float]] = {state: [] for state in sends}
    answers = set()
    for _ in range(TRIES):
        for state, send in sends.items():
            started = time.perf_counter()
            response = send()
            samples[state].append(time.perf_counter() - started)
            answers.add((response.status_code, response.data))
    return {state: statistics.median(values) for state, values in samples.items()}, answers


def assert_same_time(sends: dict[str, Callable[[], object]]) -> None:
    """Every state gets the same answer, byte for byte, in the same median time."""
    for send in sends.values():  # warm-up: the first request on each path
        send()
    rounds = []
    for _ in range(ROUNDS):
        medians, answers = _medians(sends)
        assert len(answers) == 1, answers
        rounds.append(medians)
        if max(medians.values()) / min(medians.values()) < MAX_MEDIAN_RATIO:
            return
    raise AssertionError(f"the answer's time depends on the account's state: {rounds}")
