"""Servers run in a modified way, to measure a proposed change or where memory goes."""
