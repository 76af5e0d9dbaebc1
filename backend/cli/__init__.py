"""Operator commands (`flask --app backend tenants ...`, `scripts/tenants.py ...`)."""
