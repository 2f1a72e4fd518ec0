"""Helpers the tests share: the story's World, local servers, the workflow rules.

Importable as `support` from every test folder (pyproject: `pythonpath = ["tests"]`); the
fixtures that use them live in tests/conftest.py.
"""
