"""s2kit.wire."""
