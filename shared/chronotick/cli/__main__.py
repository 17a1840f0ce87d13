"""``python -m chronotick.cli``: the ``chronotick`` command without its console script."""

from chronotick.cli import main

main()
