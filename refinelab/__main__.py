"""`python -m refinelab`: the same as the `refinelab` command."""

from refinelab.cli.app import main

main()
