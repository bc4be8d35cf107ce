"""The whole state-store behaviour suite (tests/state/test_store.py), run on PostgreSQL.

The tests are the very functions of tests/state/test_store.py; this directory's conftest gives them a
PostgreSQL ``store``/``store_factory`` (a fresh schema per test).
"""

from tests.state.test_store import *  # noqa: F401,F403
