"""`python -m helpers.study`: the study driver (helpers.study.driver)."""

import sys

from helpers.study.driver import main

sys.exit(main())
