"""Allow ``python -m memcomp``."""

from memcomp.cli import main

main()
