"""The handlers Warren ships, one module per area; ``REGISTRY`` is what ``warren consume`` runs."""

from __future__ import annotations

from warren.consumers.handlers import diag, email, media, webhook
from warren.consumers.registry import Registry

REGISTRY = Registry(
    (diag.echo, diag.sleep, diag.flaky, diag.fail, email.send, webhook.deliver, media.thumbnail)
)
