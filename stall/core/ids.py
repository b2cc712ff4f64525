"""Prefixed, time-ordered identifiers: ``prod_01jd9x…``.

An id is the type prefix, an underscore and 26 characters of Crockford base32 holding a 48-bit
millisecond timestamp and 80 random bits (the ULID layout). Ids therefore sort by creation time,
which lets cursor pagination order "newest first" on the primary key alone.

Making one is cheap: the timestamp's ten characters are encoded once per millisecond and reused,
and the random part is sixteen random bytes each mapped to a character by its low five bits (256
is a multiple of 32, so each character is uniform: 80 random bits), one C-level ``translate``. A
loop of 26 ``divmod`` per id was a third of the campaign deadline task's time. ``new_ids`` makes
many at once from one read of the random source.
"""

import os
import time

from django.db import models

_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"
_BYTE_TO_CHAR = bytes(_ALPHABET.encode()[b & 31] for b in range(256))
_RANDOM_CHARS = 16  # 16 × 5 = 80 random bits

_head = (-1, "")  # (millisecond, its ten characters): replaced whole, so a thread never sees half


def _encode(value: int, length: int) -> str:
    chars = []
    for _ in range(length):
        value, index = divmod(value, 32)
        chars.append(_ALPHABET[index])
    return "".join(reversed(chars))


def _time_head() -> str:
    global _head
    ms = int(time.time() * 1000)
    cached = _head
    if cached[0] != ms:
        cached = _head = (ms, _encode(ms, 10))
    return cached[1]


def new_id(prefix: str) -> str:
    return f"{prefix}_{_time_head()}{os.urandom(_RANDOM_CHARS).translate(_BYTE_TO_CHAR).decode()}"


def new_ids(prefix: str, count: int) -> list[str]:
    """``count`` new ids of ``prefix``, as ``count`` calls of ``new_id`` would make them."""
    head = f"{prefix}_{_time_head()}"
    tails = os.urandom(_RANDOM_CHARS * count).translate(_BYTE_TO_CHAR).decode()
    return [head + tails[i:i + _RANDOM_CHARS] for i in range(0, _RANDOM_CHARS * count, _RANDOM_CHARS)]


def id_floor(prefix: str, moment) -> str:
    """The smallest id of ``prefix`` made at ``moment`` (a datetime): ids sort by time, so a range
    of ids is a range of time that the primary key's index answers."""
    return f"{prefix}_{_encode(int(moment.timestamp() * 1000), 10)}{'0' * _RANDOM_CHARS}"


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
