"""Drivers that carry out the core's effects."""
