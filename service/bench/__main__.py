"""``python -m service.bench MODE ...``: the same as ``warren bench MODE ...``."""

import sys

from service.bench import main

sys.exit(main())
