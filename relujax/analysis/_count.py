"""Exact sample counters that do not overflow at 2**31, without x64."""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array
from jax.typing import ArrayLike

_TWO_32 = 4294967296.0


class Count(NamedTuple):
    r"""A non-negative integer count kept exactly as two ``uint32`` words.

    .. math:: \text{value} = \text{hi} \cdot 2^{32} + \text{lo}

    ``int32`` counters overflow after :math:`2^{31}` samples (about 8 million batches of 256),
    and ``int64`` needs ``jax_enable_x64``. Two ``uint32`` words count exactly up to
    :math:`2^{64} - 1` with 32-bit arithmetic only: :meth:`add` adds the low words (modulo
    :math:`2^{32}`) and carries one into the high word when the sum wrapped around. A
    ``Count`` is a pytree (a NamedTuple), so it passes through ``jit``, ``vmap``, ``scan`` and
    sharding like any array pair; all of its methods work elementwise on arrays of counts.

    Attributes:
      hi: ``uint32`` array, the multiples of :math:`2^{32}`.
      lo: ``uint32`` array of the same shape, the remainder.

    Examples:
      >>> import jax.numpy as jnp
      >>> from relujax.analysis import Count
      >>> c = Count.of(jnp.array([4_000_000_000], jnp.uint32))
      >>> c = c.add(c)  # 8e9 > 2**32: the low word wraps and carries one
      >>> c.hi, c.lo
      (Array([1], dtype=uint32), Array([3705032704], dtype=uint32))
      >>> c.to_numpy()
      array([8000000000], dtype=uint64)
    """

    hi: Array
    lo: Array

    @classmethod
    def zeros(cls, shape: tuple[int, ...] = ()) -> Count:
        """A count of zero with the given shape.

        Args:
          shape: shape of the count array.

        Returns:
          A ``Count`` of zeros.

        Examples:
          >>> from relujax.analysis import Count
          >>> Count.zeros((2,)).to_numpy()
          array([0, 0], dtype=uint64)
        """
        z = jnp.zeros(shape, jnp.uint32)
        return cls(z, z)

    @classmethod
    def of(cls, n: ArrayLike) -> Count:
        """Wraps counts smaller than :math:`2^{32}` (e.g. one batch's ``sum`` of a mask).

        Args:
          n: non-negative integer array (any integer dtype; values below :math:`2^{32}`).

        Returns:
          A ``Count`` with ``hi = 0`` and ``lo = n``.

        Examples:
          >>> import jax.numpy as jnp
          >>> from relujax.analysis import Count
          >>> Count.of(jnp.array([3, 5])).to_numpy()
          array([3, 5], dtype=uint64)
        """
        lo = jnp.asarray(n).astype(jnp.uint32)
        return cls(jnp.zeros_like(lo), lo)

    def add(self, other: Count) -> Count:
        """The exact sum of two counts (elementwise, with carry).

        Args:
          other: a ``Count`` broadcastable against ``self``.

        Returns:
          ``self + other`` as a ``Count``.

        Examples:
          >>> import jax.numpy as jnp
          >>> from relujax.analysis import Count
          >>> big = Count(jnp.array([0], jnp.uint32), jnp.array([2**32 - 1], jnp.uint32))
          >>> big.add(Count.of(jnp.array([2]))).to_numpy()
          array([4294967297], dtype=uint64)
        """
        lo = self.lo + other.lo  # uint32 arithmetic wraps modulo 2**32
        carry = (lo < self.lo).astype(jnp.uint32)
        return Count(self.hi + other.hi + carry, lo)

    def to_float(self) -> Array:
        """The count as ``float32`` (exact below :math:`2^{24}`, relative error below 1e-7).

        Returns:
          A ``float32`` array of the count's shape.

        Examples:
          >>> import jax.numpy as jnp
          >>> from relujax.analysis import Count
          >>> Count(jnp.uint32(1), jnp.uint32(0)).to_float()
          Array(4.2949673e+09, dtype=float32)
        """
        return self.hi.astype(jnp.float32) * jnp.float32(_TWO_32) + self.lo.astype(jnp.float32)

    def to_numpy(self) -> np.ndarray:
        """The exact count as a host ``numpy.uint64`` array (not traceable: call outside jit).

        Returns:
          A ``numpy.ndarray`` of dtype ``uint64``.

        Examples:
          >>> import jax.numpy as jnp
          >>> from relujax.analysis import Count
          >>> Count(jnp.array([3], jnp.uint32), jnp.array([7], jnp.uint32)).to_numpy()
          array([12884901895], dtype=uint64)
        """
        hi, lo = jax.device_get((self.hi, self.lo))
        return (np.asarray(hi, np.uint64) << np.uint64(32)) | np.asarray(lo, np.uint64)
