"""Benchmarks: one script per area; ``python -m benchmarks.run_all`` runs them all."""
