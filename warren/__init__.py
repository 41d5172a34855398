"""Warren: background tasks on RabbitMQ, submitted over HTTP, traced end to end.

The public API is what this module exports; everything under ``warren.service``
(the gateway and what gateway and consumers share) and ``warren.consumers``
(the consumer runtime) is Warren's own machinery.
"""

from __future__ import annotations
