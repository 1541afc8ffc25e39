"""The command line: thin commands that parse arguments and call `refinelab.api` (entry: `cli.app:main`)."""
