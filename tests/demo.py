"""The repository's example app as the tests use it: its catalogue (diag.* included) and its
handlers, with the app's settings read from ``DEMO_*`` as a consumer would."""

from __future__ import annotations

import os

# The app's consumers refuse its known default webhook secret; the tests' consumers (in
# process, and the processes they start, which inherit it) sign with this one.
os.environ.setdefault("DEMO_WEBHOOK_SIGNING_SECRET", "test-only-signing-secret")

from examples.demo.tasks import app as DEMO_APP
from warren.consumers.loader import registry_of

CATALOG = DEMO_APP.catalog
REGISTRY = registry_of(DEMO_APP)
