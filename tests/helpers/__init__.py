"""Shared test helpers (tiny networks, episodes, checkpoints)."""
