"""Entities, enums and pure policy. Imports nothing of the project but itself."""
