"""The fault-injection proxy behind :mod:`s2kit.testing.faults` (see there)."""
