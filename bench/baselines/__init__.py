"""Baseline relays for the benchmark: the same Kamon join and relay rules, less code."""
