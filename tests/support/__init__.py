"""Helpers shared by the test modules (local HTTP receiver, scenario builders)."""
