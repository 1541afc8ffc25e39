"""Measuring data, pure: coverage and divergence, difficulty (IRT, Elo), error checks, distractor metrics, targets."""
