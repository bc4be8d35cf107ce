"""syncform: integration-as-code for business apps.

The public surface is small: ``engine.workspace`` is the library's front door, ``engine.errors`` the
exception tree. Everything else is imported lazily by the commands that need it.
"""

__version__ = "0.1.0"
