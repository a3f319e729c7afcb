"""`python -m streamfn.cli`: the console script run by this interpreter."""

import sys

from streamfn.cli import main

sys.exit(main())
