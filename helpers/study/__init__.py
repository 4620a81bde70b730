"""Running the study: `make study` = `python -m helpers.study` (driver), and the notebook
hygiene check `make test` runs (`python -m helpers.study.hygiene notebooks`)."""

from helpers.study.driver import main

__all__ = ["main"]
