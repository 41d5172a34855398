"""``python -m warren``: the ``warren`` command, for when its script is not on ``PATH``."""

from warren.service.cli import main

raise SystemExit(main())
