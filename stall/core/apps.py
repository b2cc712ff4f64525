from django.apps import AppConfig

from stall.core import ninja_setup  # noqa: F401  (before Django imports ninja; see the module)


class CoreConfig(AppConfig):
    name = "stall.core"
    label = "core"
