"""Shared plumbing: distributed helpers, logging, atomic I/O and provenance."""
