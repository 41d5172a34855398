"""A submission's ``priority`` against what the work queues honour: refused, never ignored.

Classic work queues are declared with ``x-max-priority`` (``priority_levels`` - 1), so a
higher priority waiting in a queue is delivered before lower ones. Quorum queues on
RabbitMQ 3.10 have no priorities, and a classic queue declared with fewer levels caps
what it is given: either way a priority asked for would be a silent no-op, so it is a
``422`` naming the levels the deployment has.
"""

from __future__ import annotations

from warren.service.http.problems import Problem
from warren.service.http.submission import ValidSubmission
from warren.service.settings import Settings
from warren.service.topology import honoured_priorities


def check_priority(valid: ValidSubmission, settings: Settings) -> None:
    """A 422 unless the work queues honour ``valid.priority``."""
    levels = honoured_priorities(settings)
    if valid.priority < levels:
        return
    if levels == 1:
        why = f"{settings.queue_type} work queues here honour no priorities: send 0"
    else:
        why = f"the work queues honour priorities 0 to {levels - 1}"
    raise Problem(
        422,
        "validation-failed",
        "Unprocessable Content",
        "a priority the work queues cannot honour",
        errors=[{"loc": ["priority"], "type": "priority_not_honoured", "msg": why}],
    )
