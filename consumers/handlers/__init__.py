"""The handlers Warren ships, one module per area; ``REGISTRY`` is what ``warren consume`` runs."""

from __future__ import annotations

from consumers.handlers import diag, email, media, webhook
from consumers.registry import Registry

REGISTRY = Registry(
    (diag.echo, diag.sleep, diag.flaky, diag.fail, email.send, webhook.deliver, media.thumbnail)
)
