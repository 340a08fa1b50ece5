"""``python -m bpf``: see bpf.cli."""

import sys

from .cli import main

sys.exit(main())
