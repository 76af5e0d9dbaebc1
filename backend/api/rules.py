"""The domain's rules for request strings, stated in the document as JSON Schema patterns, so
that a generator or a fuzzer produces what the API accepts (Schemathesis'
`positive_data_acceptance`, tests/integration/proof).

Every pattern here also refuses NUL characters (backend/api/parsing.py), like the default one
every other request string carries. Patterns use only what ECMA 262 and Python share."""

from __future__ import annotations

import re

import marshmallow as ma

from backend.domain.tenants import RESERVED_SLUGS

# What Python's str.strip() removes (str.isspace), spelled out: `\s` differs between Python
# and ECMA 262 (\x1c-\x1f and \x85 are space to one, \ufeff to the other), and a generator
# reading the document must agree with the domain. Found by the API fuzzer (`"\x1e"` as a name).
SPACE = r"\t\n\x0b\x0c\r\x1c-\x1f \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
# A name the domain trims and then requires non-empty (clients, workspaces).
NON_BLANK = rf"^[^\x00]*[^\x00{SPACE}][^\x00]*$"
# backend/domain/tenants.py validate_slug: 3-40 lowercase letters, digits and single hyphens,
# starting and ending with a letter or digit, not reserved, not `pg-...`.
_RESERVED = "|".join(sorted(re.escape(slug) for slug in RESERVED_SLUGS))
SLUG = rf"^(?!pg-)(?!(?:{_RESERVED})$)(?!.*--)[a-z0-9][a-z0-9-]{{1,38}}[a-z0-9]$"
# A slug, or empty: "derive one from the workspace name".
OPTIONAL_SLUG = rf"^$|{SLUG}"
# backend/domain/clients.py: blank (stored as none), or digits, spaces and + ( ) . / - with at
# least three digits, once trimmed.
PHONE = rf"^[{SPACE}]*$|^[{SPACE}]*\+?(?=(?:[^0-9]*[0-9]){{3}})[0-9 ()./-]+[{SPACE}]*$"
# The addresses accepted: marshmallow's Email validator and this pattern, which leaves out
# its rarer forms (quoted local parts, internationalised domains) and, like RFC 5321 and the
# `email` format checkers, local parts over 64 characters: a dot-atom local part and a dotted
# domain whose last label has two characters or more.
_ATOM = r"[-!#$%&'*+/=?^_`{}|~0-9A-Za-z]+"
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_LAST_LABEL = r"(?:[A-Za-z]{2,6}|[A-Za-z0-9-]{1,}[A-Za-z0-9])"
EMAIL = rf"^(?=[^@]{{1,64}}@){_ATOM}(?:\.{_ATOM})*@(?:{_LABEL}\.)+{_LAST_LABEL}$"


EMAIL_MESSAGE = "Not a valid email address."


class Email(ma.fields.Email):
    """marshmallow's Email, also held to the documented pattern (the document and the server
    accept the same addresses)."""

    def __init__(self, **kwargs) -> None:
        metadata = {"pattern": EMAIL, **kwargs.pop("metadata", {})}
        super().__init__(metadata=metadata, **kwargs)
        self.validators.append(ma.validate.Regexp(EMAIL, error=EMAIL_MESSAGE))
