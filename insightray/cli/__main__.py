"""``python -m insightray.cli``."""

from insightray.cli import main

main()
