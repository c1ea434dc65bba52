"""s2kit.server."""
