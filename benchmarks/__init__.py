"""Benchmarks: ecs-sandbox against a baseline that behaves as the reference module does.

``python -m benchmarks`` (``make bench``) runs every benchmark in one process, prints a table
of figures (ours, baseline, ratio, target) and writes ``benchmarks/results/latest.json``.
"""
