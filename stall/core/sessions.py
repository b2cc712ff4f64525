"""Sessions in the database, read with one written-out SELECT.

The same store as Django's ``db`` backend, chosen for the reasons in settings (SESSION_ENGINE): a
signed-out session is gone for every copy of its cookie, and every process reads the same row.
Only the read differs. Every signed-in request reads its session, and the ORM spent about a
millisecond of CPU building that one-table query each time (bench/unlock.py's profile); this reads
the same row, unexpired, with SQL written once (stall.core.rows). Writes stay Django's.
"""

from django.contrib.sessions.backends.db import SessionStore as DatabaseSessionStore
from django.contrib.sessions.models import Session
from django.db import connections, router
from django.utils import timezone

from .rows import model_columns, model_from_row

_SELECT = f"SELECT {model_columns(Session, 's')} FROM django_session s WHERE s.session_key = %s AND s.expire_date > %s"


class SessionStore(DatabaseSessionStore):
    @classmethod
    def get_model_class(cls):
        return Session

    def _get_session_from_db(self):
        using = router.db_for_read(Session)
        connection = connections[using]
        with connection.cursor() as cursor:
            cursor.execute(_SELECT, [self.session_key, connection.ops.adapt_datetimefield_value(timezone.now())])
            row = cursor.fetchone()
        if row is None:
            self._session_key = None  # as Django's: an unknown or expired key is dropped
            return None
        return model_from_row(Session, row, using=using)
