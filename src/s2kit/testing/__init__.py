"""s2kit.testing."""
