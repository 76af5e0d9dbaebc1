"""Shared foundations: config, database engine and tenant scope, tokens, logging."""
