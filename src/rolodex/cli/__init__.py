"""The ``rolodex`` command line."""
