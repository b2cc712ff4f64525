"""The WSGI application, loaded whole when this module is imported.

Whole: the URLconf, and through it every view and API route, is imported here rather than by
the first request, which then finds it loaded. A server that imports the application once and
then forks its workers (gunicorn's ``--preload``; ``stall serve`` does not use it, see
``stall.cli.web_command``) would share these pages among the workers. For that, nothing may stay
open across the fork: the database connections and the queue's handle are closed again, and the
objects made so far are frozen out of the garbage collector, whose passes would otherwise write
to — and so copy — every page it visits.
"""

import gc
import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "stall.settings")
application = get_wsgi_application()

# Imported once the settings are configured: Huey's Django module reads them.
from django.db import connections
from django.urls import get_resolver
from huey.contrib.djhuey import HUEY

from stall.core.gate import database_vendor, gated

get_resolver().url_patterns  # noqa: B018  (imports the URLconf and every view behind it)
# What granian serves (`stall serve --server granian`): on SQLite, one of its blocking threads at
# a time in the application, as gunicorn's worker threads are (stall.core.gate).
gated_application = gated(application, database_vendor())
connections.close_all()
HUEY.storage.close()
gc.freeze()
# The youngest generation is collected after 20,000 new objects rather than 700: a request that
# parses a batch of a thousand usage events makes some 8,000, and each of the ~11 collections
# it set off walked them all again (with the older ones it woke, a tenth of the request:
# 2.4 us of ~22 us an event, 0.5 us after). Garbage in cycles waits a little longer to be freed.
gc.set_threshold(20_000, *gc.get_threshold()[1:])
