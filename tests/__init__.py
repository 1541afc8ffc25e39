"""The test suite (a package so that `tests.support` imports without sys.path tricks)."""
