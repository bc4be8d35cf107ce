"""App clients over HTTP (httpx), one per app, behind ``engine.apps.base.AppClient``.

``engine.apps.registry.open_client(connection, workdir=...)`` builds the client of a connection:
the real API (data-centre URLs or ``base_url``) or, for ``sandbox:`` connections, the built-in sandbox
in-process through httpx's WSGI transport.
"""
