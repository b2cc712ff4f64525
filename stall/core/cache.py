"""The rate limits' cache on a machine without Redis: Django's file cache, counting atomically.

Local memory (Django's default cache) is one cache per process, so with two web workers a limit
of ten would let through up to twenty, depending on which worker the kernel hands each request.
Files in the data directory are one cache for every process of the machine. Django's file cache
makes ``add`` and ``incr`` a read then a write, so two workers counting at once could both read
4 and both write 5; here both run under one exclusive ``flock``, which makes them atomic across
processes and threads (each call opens the lock file anew, and flock locks belong to the open
file). A count costs ~80 µs (bench/limits.py; a subject's first count in a window, which adds a
file, ~0.6 ms), and the database is not touched. Django's DatabaseCache, the other shared cache
at hand, took ~3.5 ms a count on SQLite, and would make every API request a write transaction
queued on the database's one write lock; its incr is a read then a write too.
"""

import contextlib
import os
import pickle
import time
import zlib

from django.core.cache.backends.base import DEFAULT_TIMEOUT
from django.core.cache.backends.filebased import FileBasedCache
from django.core.files import locks


class LockedFileCache(FileBasedCache):
    @contextlib.contextmanager
    def _locked(self):
        self._createdir()
        with open(os.path.join(self._dir, "lock"), "ab") as fh:
            locks.lock(fh, locks.LOCK_EX)
            try:
                yield
            finally:
                locks.unlock(fh)

    def add(self, key, value, timeout=DEFAULT_TIMEOUT, version=None):
        with self._locked():
            return super().add(key, value, timeout, version)

    def incr(self, key, delta=1, version=None):
        """Add to a count, keeping when it expires (Django's file cache would give it the
        default timeout again: a window's count would outlive, or die before, its window).

        Rewritten in place, under the lock, rather than written aside and renamed over: on ext4 a
        rename over a file waits for the new file's blocks to be written (auto_da_alloc), which
        made a count cost ~2 ms. Only add and incr, both locked, touch a count."""
        fname = self._key_to_file(key, version)
        with self._locked():
            try:
                fh = open(fname, "r+b")
            except FileNotFoundError:
                raise ValueError(f"Key '{key}' not found") from None
            with fh:
                try:
                    expiry = pickle.load(fh)
                    value = pickle.loads(zlib.decompress(fh.read()))
                except (EOFError, zlib.error, pickle.UnpicklingError):
                    expiry, value = 0, None  # an empty or torn file: as if expired
                if expiry is not None and expiry < time.time():
                    fh.close()
                    self._delete(fname)
                    raise ValueError(f"Key '{key}' not found")
                value += delta
                fh.seek(0)
                fh.write(pickle.dumps(expiry, self.pickle_protocol))
                fh.write(zlib.compress(pickle.dumps(value, self.pickle_protocol)))
                fh.truncate()
            return value

    def _cull(self):
        """Make room by dropping expired counts first. Django's file cache drops a random third
        of its entries when full, which would forget live counts: someone could then fill the
        cache with throwaway keys to have their own count forgotten."""
        files = self._list_cache_files()
        if len(files) < self._max_entries:
            return
        for fname in files:
            with contextlib.suppress(FileNotFoundError), open(fname, "rb") as fh:
                self._is_expired(fh)  # deletes it when expired
        if len(self._list_cache_files()) >= self._max_entries:
            super()._cull()
