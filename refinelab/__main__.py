"""`python -m refinelab`: the same as the `refinelab` command.

`python -m` puts the working folder first on the import path, so a file there named like a library the
command imports later (`typer.py`, `yaml.py`, `pandas.py` in a folder of data from elsewhere) would run in its
place. The folder is taken off the path before the command is imported, as the `refinelab` entry point never
had it (`python -P` does the same for everything; the few standard modules Python loads before this file runs
are out of our reach)."""

import os
import sys

if sys.path and os.path.realpath(sys.path[0] or os.curdir) == os.path.realpath(os.getcwd()):
    del sys.path[0]

from refinelab.cli.app import main  # noqa: E402  (after the path is cleaned, on purpose)

main()
