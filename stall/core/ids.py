"""Prefixed, time-ordered identifiers: ``prod_01jd9x…``.

An id is the type prefix, an underscore and 26 characters of Crockford base32 holding a 48-bit
millisecond timestamp and 80 random bits (the ULID layout). Ids therefore sort by creation time,
which lets cursor pagination order "newest first" on the primary key alone.
"""

import secrets
import time

from django.db import models

_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"


# Two characters (ten bits) a lookup: a third less time than the loop of five-bit divmods, and ids
# are made by the thousand per renewal group.
_PAIRS = [_ALPHABET[i >> 5] + _ALPHABET[i & 31] for i in range(1024)]
_SHIFTS = tuple(range(120, -1, -10))  # 128 bits as 26 characters: 130 bits, two leading zeros


def new_id(prefix: str) -> str:
    value = (int(time.time() * 1000) << 80) | secrets.randbits(80)
    return prefix + "_" + "".join([_PAIRS[(value >> shift) & 1023] for shift in _SHIFTS])


def id_floor(prefix: str, moment) -> str:
    """The smallest id of ``prefix`` made at ``moment`` (a datetime): ids sort by time, so a range
    of ids is a range of time that the primary key's index answers."""
    value = int(moment.timestamp() * 1000) << 80
    chars = []
    for _ in range(26):
        value, index = divmod(value, 32)
        chars.append(_ALPHABET[index])
    return f"{prefix}_{''.join(reversed(chars))}"


class PrefixedIdField(models.CharField):
    """Primary key holding a prefixed id, generated when the object is created."""

    def __init__(self, prefix: str, **kwargs):
        self.prefix = prefix
        kwargs["max_length"] = 40
        kwargs["primary_key"] = True
        kwargs["editable"] = False
        kwargs.pop("default", None)
        super().__init__(**kwargs)

    def has_default(self) -> bool:
        return True

    def get_default(self) -> str:
        return new_id(self.prefix)

    def deconstruct(self):
        name, path, args, kwargs = super().deconstruct()
        for key in ("max_length", "primary_key", "editable", "default"):
            kwargs.pop(key, None)
        kwargs["prefix"] = self.prefix
        return name, path, args, kwargs
