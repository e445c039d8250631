"""CardDAV: the protocol client (``client``) and the connector built on it (``connector``)."""
