"""Clock ids made from names that were not chosen as one (a host name, a log's file name).

The contract's ``CLOCK_ID_PATTERN`` allows letters, digits and ``._:@-`` after a leading letter or
digit, at most 128 characters: every other character becomes ``-``, leading punctuation goes, and
the rest is cut at 128. A name with no letter or digit at all gives ``""``, which the contract
refuses: such a clock has to be named explicitly.
"""

from __future__ import annotations

import re

MAX_CLOCK_ID_LENGTH = 128
_NOT_ALLOWED = re.compile(r"[^A-Za-z0-9._:@-]")
_LEADING_PUNCTUATION = re.compile(r"^[._:@-]+")


def clock_id_from(name: str, max_length: int = MAX_CLOCK_ID_LENGTH) -> str:
    """``name`` as a clock id of at most ``max_length`` characters (see the module docstring)."""
    return _LEADING_PUNCTUATION.sub("", _NOT_ALLOWED.sub("-", name))[:max_length]
