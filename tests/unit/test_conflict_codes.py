"""Constraint names -> 409 codes, including the shard-suffixed names Citus reports."""

from backend.infrastructure.sql.errors import conflict_code


def test_known_names_and_their_shard_names_map_to_the_same_code():
    assert conflict_code("ex_appointments_no_overlap") == "appointment_overlap"
    assert conflict_code("ex_appointments_no_overlap_102009") == "appointment_overlap"
    assert conflict_code("uq_clients_email_lower_102011") == "client_email_taken"


def test_unknown_names_stay_unmapped():
    assert conflict_code(None) is None
    assert conflict_code("ex_appointments_no_overlap_x") is None
    assert conflict_code("some_constraint_102009") is None
