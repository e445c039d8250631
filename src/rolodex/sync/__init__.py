"""Moving changes between a connector and the store: pull with cursors, push the outbox.

The engine knows only the connector interface (``rolodex.connectors.base``) and the local
side of sync (``rolodex.service.mirror``); it never sees SQL or a provider's protocol.
"""
