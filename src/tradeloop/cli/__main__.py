"""``python -m tradeloop.cli``."""

from tradeloop.cli import main

main()
