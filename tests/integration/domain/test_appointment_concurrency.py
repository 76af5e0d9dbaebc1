"""Two (or more) simultaneous bookings of one slot, through the app, in threads released
together by a barrier: the database's exclusion constraint lets exactly one commit.

There is no overlap check in Python at all (service/appointments.py), so nothing but the
constraint can produce this outcome."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

from tests.integration.domain.conftest import API, at

CONTENDERS = 4
ROUNDS = 3


def test_simultaneous_bookings_of_one_slot_let_exactly_one_win(app, workspace):
    ws = workspace()
    people = [ws.create_client(name=f"Contender {n}")["id"] for n in range(CONTENDERS)]

    def book(barrier: threading.Barrier, client_id: str, start: float) -> tuple[int, dict]:
        http = app.test_client()  # one test client per thread
        body = {"client_id": client_id, "starts_at": at(start), "ends_at": at(start + 1)}
        barrier.wait(timeout=30)
        response = http.post(f"{API}/appointments", json=body, headers=ws.worker)
        return response.status_code, response.json

    with ThreadPoolExecutor(max_workers=CONTENDERS) as pool:
        for round_ in range(ROUNDS):
            barrier = threading.Barrier(CONTENDERS)
            # Each round a fresh slot; within a round every request overlaps every other one,
            # exactly (first contender) or partly (shifted by 6 minutes each).
            starts = [round_ * 10 + 0.1 * k for k in range(CONTENDERS)]
            results = list(pool.map(book, [barrier] * CONTENDERS, people, starts))
            statuses = sorted(status for status, _ in results)
            assert statuses == [201] + [409] * (CONTENDERS - 1), results
            assert all(body == {"detail": "appointment_overlap"} for status, body in results if status == 409)

    booked = ws.http.get(f"{API}/appointments", headers=ws.worker).json
    assert len(booked) == ROUNDS
