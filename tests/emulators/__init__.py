"""Emulators of provider APIs that cannot be reached from here, written from their public
references (``../shared/reference/``) and served on 127.0.0.1 by the tests."""
