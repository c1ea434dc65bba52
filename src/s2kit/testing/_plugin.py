"""pytest plugin: the ``s2kit_lite`` fixture (filled in by the lite runner)."""
