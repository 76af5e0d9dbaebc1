"""The two metadata objects: `shared` tables carry their schema, tenant tables carry none
(the transaction's search path decides which tenant they belong to)."""

from sqlalchemy import MetaData

# Stable constraint names: the api maps them to error codes (409 `client_email_taken`, ...).
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

SHARED_SCHEMA = "shared"
shared_metadata = MetaData(schema=SHARED_SCHEMA, naming_convention=NAMING_CONVENTION)
tenant_metadata = MetaData(naming_convention=NAMING_CONVENTION)
