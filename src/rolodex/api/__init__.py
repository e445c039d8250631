"""Thin HTTP: routing, auth, lenient bodies, the v2 error shape. No SQL here."""
