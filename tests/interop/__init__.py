"""Interop tests: official S2 SDKs driving lite.

A package (unlike the other test folders) so that its ``conftest`` gets a module name of its own
(``interop.conftest``) and can still import ``quick_config`` from the top-level ``conftest``.
"""
