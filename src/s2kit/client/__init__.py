"""s2kit.client."""
