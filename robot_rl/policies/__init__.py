"""Policies: observation encoders, diffusion and flow heads, normalizer, residual actor (issue 3)."""
