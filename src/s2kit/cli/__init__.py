"""s2kit.cli."""
