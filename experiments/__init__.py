"""Hydra entry points: each composes a config and calls lth. Nothing else lives here."""
