"""RefineLab."""
