"""`python3 -m standin ROLE [ARGS...]` inside a test image."""

import sys

from .entry import main

sys.exit(main(sys.argv[1:]))
