"""Reproduction of the OctMNIST deep-learning homework report (Questions 1-3)."""
