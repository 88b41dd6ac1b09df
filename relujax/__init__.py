"""relujax: the ReLU family in JAX, and its failure mode, the dead unit."""

__version__ = "0.1.0"

__all__ = [
    "__version__",
]
