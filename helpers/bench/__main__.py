"""`python -m helpers.bench` (`make bench`): the sections of helpers.bench.driver."""

import sys

from helpers.bench.driver import main

sys.exit(main())
