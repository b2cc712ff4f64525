"""Model instances from a hand-written SELECT, for the few reads on the hot path.

Building a query with the ORM costs about a millisecond of CPU for a join of three tables (the
compiler runs on every call; Django keeps no compiled SQL), against some tens of microseconds for
running it. A read that every one-click spend makes is written as SQL instead, and this turns
its rows into the same model instances the ORM would have made: the columns in field order
(``model_columns``), each value passed through the converters the ORM itself applies (dates read
back from SQLite's text, booleans from integers), then ``Model.from_db``, so the instance is one
loaded from the database in every way (``_state``, deferred fields, ``refresh_from_db``).
"""

from __future__ import annotations

from django.db import connections
from django.db.models import Model
from django.db.models.base import ModelState
from django.db.models.signals import post_init, pre_init
from django.utils import timezone


def model_columns(model, alias: str) -> str:
    """The model's concrete columns, in field order, qualified by ``alias``."""
    return ", ".join(f'{alias}."{field.column}"' for field in model._meta.concrete_fields)


_CONVERTERS: dict[tuple[str, type], list] = {}


def _converters(model, using: str) -> list:
    key = (using, model)
    found = _CONVERTERS.get(key)
    if found is None:
        connection = connections[using]
        found = []
        for field in model._meta.concrete_fields:
            col = field.get_col(model._meta.db_table)
            found.append((col, connection.ops.get_db_converters(col) + field.get_db_converters(connection)))
        _CONVERTERS[key] = found
    return found


def model_from_row(model, row, *, using: str = "default"):
    """An instance of ``model`` from ``row``: its ``model_columns`` values, in order."""
    connection = connections[using]
    values = []
    for value, (col, converters) in zip(row, _converters(model, using), strict=True):
        for converter in converters:
            value = converter(value, col, connection)
        values.append(value)
    return model_loaded(model, values, using=using)


_ATTNAMES: dict[type, tuple[str, ...]] = {}


def model_loaded(model, values: list, *, using: str = "default"):
    """``model.from_db(using, None, values)``: an instance loaded from the database, with all its
    concrete fields' values in order. ``Model.__init__`` sets each field through its descriptor,
    and a foreign key's checks its cache, which for the dozen instances of a card checkout was a
    twentieth of its time; a loaded row needs none of that, so its values go into the instance's
    ``__dict__`` as ``__init__`` would leave them. A model that overrides ``from_db`` or
    ``__init__``, or whose instances a pre_init/post_init receiver watches, gets ``from_db``."""
    attnames = _ATTNAMES.get(model)
    if attnames is None:
        plain = model.from_db.__func__ is Model.from_db.__func__ and model.__init__ is Model.__init__
        attnames = _ATTNAMES[model] = tuple(f.attname for f in model._meta.concrete_fields) if plain else ()
    if not attnames or pre_init.has_listeners(model) or post_init.has_listeners(model):
        return model.from_db(using, None, values)
    instance = model.__new__(model)
    instance.__dict__.update(zip(attnames, values, strict=True))
    state = instance._state = ModelState()
    state.adding, state.db = False, using
    return instance


_NOW = object()  # a default meaning "the moment of the insert" (auto_now, auto_now_add)


class _InsertPlan:
    """How ``model_insert`` writes a model: its columns, what adapts each value, its INSERT."""

    def __init__(self, model, connection):
        fields = model._meta.concrete_fields
        self.auto = model._meta.pk if model._meta.pk.get_internal_type() in ("AutoField", "BigAutoField") else None
        self.fields = [f for f in fields if f is not self.auto]
        self.attnames = [f.attname for f in fields]
        self.defaults = {}
        self.adapters = []
        for f in self.fields:
            if getattr(f, "auto_now", False) or getattr(f, "auto_now_add", False):
                self.defaults[f.attname] = _NOW
            elif f.has_default():
                # A callable default (a new id; PrefixedIdField's own get_default, whose ``default`` is
                # NOT_PROVIDED, a class) is called per row, a constant one taken once.
                self.defaults[f.attname] = f.get_default if callable(f.default) else f.get_default()
            kind = f.get_internal_type()
            if kind == "DateTimeField":
                self.adapters.append(connection.ops.adapt_datetimefield_value)
            elif kind == "JSONField":
                self.adapters.append(lambda value, field=f: field.get_db_prep_save(value, connection))
            else:
                self.adapters.append(None)  # str, int, bool, None: the driver takes them as they are
        self.times = _NOW in self.defaults.values()
        names = ", ".join(connection.ops.quote_name(f.column) for f in self.fields)
        self.marks = "(" + ", ".join(["%s"] * len(self.fields)) + ")"
        self.sql = f"INSERT INTO {connection.ops.quote_name(model._meta.db_table)} ({names}) VALUES "
        if self.auto is not None:
            self.returning = f" RETURNING {connection.ops.quote_name(self.auto.column)}"


_INSERT_PLANS: dict[tuple[str, type], _InsertPlan] = {}


def model_insert(model, rows: list[dict], *, now=None, using: str = "default") -> list:
    """Write new rows of ``model`` with one INSERT and return them as instances, as ``save()`` or
    ``bulk_create`` would have left them. Each row gives values by attname (``store_id``); a
    field left out takes its default, an ``auto_now``/``auto_now_add`` one ``now``; an auto id
    comes back from the database. Only for models with no ``save()`` of their own and no signals
    received on save: it is a hot path's INSERT without the ORM's building of it (see above)."""
    if not rows:
        return []
    connection = connections[using]
    plan = _INSERT_PLANS.get((using, model))
    if plan is None:
        plan = _INSERT_PLANS[(using, model)] = _InsertPlan(model, connection)
    if now is None and plan.times:
        now = timezone.now()
    params, full = [], []
    for row in rows:
        values = dict(row)
        for name, default in plan.defaults.items():
            if name not in values:
                values[name] = now if default is _NOW else (default() if callable(default) else default)
        for field, adapt in zip(plan.fields, plan.adapters, strict=True):
            value = values[field.attname]
            params.append(value if adapt is None or value is None else adapt(value))
        full.append(values)
    sql = plan.sql + ", ".join([plan.marks] * len(rows))
    with connection.cursor() as cursor:
        if plan.auto is None:
            cursor.execute(sql, params)
        else:
            cursor.execute(sql + plan.returning, params)
            for values, (pk,) in zip(full, cursor.fetchall(), strict=True):
                values[plan.auto.attname] = pk
    return [model_loaded(model, [values.get(name) for name in plan.attnames], using=using) for values in full]


class PrefetchedRows(dict):
    """An instance's prefetched-objects cache holding related rows its caller already has (wrote
    or read), by relation name: ``instance.lines.all()`` then runs no query, as after
    ``prefetch_related("lines")``. The queryset Django keeps there is built only when someone goes
    through the related manager: building one costs about 0.2 ms, and a hot path's own readers
    take the rows with ``prefetched_rows`` instead."""

    def __init__(self, instance, rows: dict[str, list], known: dict | None = None):
        super().__init__({k: v for k, v in (known or {}).items() if k not in rows})
        self._instance, self._rows = instance, dict(rows)

    def __missing__(self, name):
        if name not in self._rows:
            raise KeyError(name)
        relation = type(self._instance)._meta.get_field(name)
        queryset = relation.related_model._default_manager.filter(**{relation.field.name: self._instance})
        queryset._result_cache, queryset._prefetch_done = self._rows[name], True
        self[name] = queryset
        return queryset

    def __contains__(self, name) -> bool:
        return name in self._rows or super().__contains__(name)

    def get(self, name, default=None):
        return self[name] if name in self else default

    def clear(self) -> None:  # refresh_from_db forgets what was prefetched
        super().clear()
        self._rows.clear()


def prefetched_rows(instance, name: str) -> list | None:
    """The related rows ``name`` of ``instance`` when they are held (``PrefetchedRows``, or a real
    prefetch), else None: the caller then asks the related manager."""
    cache = getattr(instance, "_prefetched_objects_cache", None)
    if cache is None:
        return None
    if isinstance(cache, PrefetchedRows) and name in cache._rows:
        return cache._rows[name]
    queryset = dict.get(cache, name)
    return None if queryset is None else list(queryset)
