"""The client's tests import it from this checkout (no install needed) and start `stall serve`
the way tests/test_serve.py does."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
