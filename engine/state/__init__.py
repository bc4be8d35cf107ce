"""State stores: what is deployed, and the sync bookkeeping of every integration.

``engine.state.open_store(url)`` opens a store by URL: ``sqlite:///path/state.db`` (default
``sqlite:///.syncform/state.db``) or, later, ``postgresql://...``.
"""
