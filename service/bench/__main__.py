"""``python -m warren.service.bench MODE ...``: the same as ``warren bench MODE ...``."""

import sys

from warren.service.bench import main

sys.exit(main())
