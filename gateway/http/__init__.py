"""Everything the gateway does in HTTP terms, around the GraphQL pipeline: the request guard and
the server protocol (guard.py), caller authentication (auth.py), the one GraphQL-over-HTTP view
(view.py) with its media type negotiation (media.py) and persisted documents (persisted.py),
compression (compression.py), the access log, metrics and tracing (observability.py), and the
request's one typed state (state.py). Below it: the schema; above it: the composition root.
"""
