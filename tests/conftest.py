"""Shared test configuration: strict JAX settings, float32 by default."""

import jax

# Implicit rank promotion hides shape bugs; relujax never relies on it.
jax.config.update("jax_numpy_rank_promotion", "raise")
