"""Measurements taken while a run trains: the error along the path between two networks
(linear mode connectivity), a mask's accuracy on the untrained weights (supermasks), the
early-bird window. Below the driver; ``lth.analysis`` reads what they stored."""
