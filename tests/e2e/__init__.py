"""End-to-end browser tests of the Connect Four demo (``nox -s e2e``).

A package so that its ``conftest`` is imported as ``e2e.conftest`` and never
shadows the top-level ``tests/conftest.py`` (whose tests ``import conftest``).
"""
