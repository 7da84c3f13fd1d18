"""Kernel families, one module each; each has a NumPy reference and a documented tolerance."""
