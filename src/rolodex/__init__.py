"""Rolodex: a self-hosted contacts API in the Nylas Contacts API v2 wire format."""

__version__ = "0.1.0"
