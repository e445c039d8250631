"""Provider protocols behind one interface (``rolodex.connectors.base``).

Connectors know nothing of HTTP routes or SQL: they speak their provider's protocol and the
domain's models.
"""
