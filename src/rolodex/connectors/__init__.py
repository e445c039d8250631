"""Provider protocols behind one interface (``rolodex.connectors.base``).

Connectors know nothing of HTTP routes or SQL: they speak their provider's protocol and the
domain's models.
"""

import warnings

import authlib.deprecate  # noqa: F401  (its filter first, so that the one below wins)

# authlib 1.9 warns, on first import of its httpx integration, that it runs on httpx rather
# than httpx2, and makes its warnings always show: every `rolodex sync` and every server
# log began with that DeprecationWarning. Every connector's authlib import is under here.
warnings.filterwarnings(
    "ignore", message="The httpx module is deprecated", category=DeprecationWarning
)
