"""Large libraries imported on first use, not by every process at start.

``stripe`` (with the ``requests`` and ``httpx`` it loads) costs about 12 MB and 0.4 s in each
process that imports it; most of Stall's processes never call Stripe or send a webhook. A module
that needs such a library names it here and uses it as usual::

    stripe = LazyModule("stripe")
    ...
    except stripe.StripeError:

The first attribute read imports the library (under Python's import lock, so threads racing for
it get the one module); every later read is a dictionary look-up in ``sys.modules``.
"""

import importlib
from types import ModuleType


class LazyModule:
    """Stands for the module ``name``; imports it when an attribute is first read."""

    def __init__(self, name: str):
        self._name = name

    def _module(self) -> ModuleType:
        return importlib.import_module(self._name)

    def __getattr__(self, attr: str):
        return getattr(self._module(), attr)

    def __repr__(self) -> str:
        return f"<LazyModule {self._name}>"
