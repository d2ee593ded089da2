"""Put `tests/` on sys.path so benchmark scripts can import the test helpers (`testkit`).

Benchmarks run as scripts (`python benchmarks/x.py`), so this folder is sys.path[0] and
`import _paths` finds this file; import it before anything from `testkit`.
"""

import sys
from pathlib import Path

TESTS = str(Path(__file__).resolve().parent.parent / "tests")
if TESTS not in sys.path:
    sys.path.insert(1, TESTS)
