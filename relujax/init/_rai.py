"""Randomized asymmetric initialization (RAI) of Lu, Shin, Su and Karniadakis (2020)."""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Protocol, runtime_checkable

import jax
import jax.numpy as jnp
from jax import Array
from jax.typing import DTypeLike

from relujax import _validation
from relujax.init import _checks

#: Standard deviation scale of the symmetric part, times 1/sqrt(fan_in).
RAI_SIGMA = 0.6007
#: Parameters (alpha, beta) of the asymmetric Beta distribution.
RAI_BETA = (2.0, 1.0)


@functools.partial(jax.jit, static_argnums=(1, 2, 6, 7))
def _draw(
    key: Array,
    shape: tuple[int, ...],
    fan_in: int,
    sigma: float,
    a: float,
    b: float,
    general: bool,
    dtype: jnp.dtype,
) -> tuple[Array, Array]:
    """One RAI draw, jitted: one compilation per kernel shape and dtype.

    ``sigma``, ``a`` and ``b`` are traced, so changing them does not recompile; only
    ``general`` (neither a nor b is 1) switches to ``jax.random.beta``.

    All randomness comes from ONE uniform sample ``u`` of shape ``(fan_out, fan_in + 3)``
    (one call of the random-bit generator, the dominant XLA compile cost per new shape):
    its first ``fan_in + 1`` columns become the symmetric normals by the inverse normal
    CDF (as ``jax.random.normal`` does); the last two give the replaced position
    ``floor(u * (fan_in + 1))`` and, by inverse CDF, the Beta entry (Beta(a, 1) is
    ``u**(1/a)``, Beta(1, b) is ``1 - u**(1/b)``). Other Beta parameters use
    ``jax.random.beta`` with a second key.
    """
    fan_out, n = shape[-1], fan_in + 1
    compute = jnp.promote_types(dtype, jnp.float32)
    k_uniform, k_beta = jax.random.split(key) if general else (key, key)
    u = jax.random.uniform(k_uniform, (fan_out, n + 2), compute)
    lowest = jnp.nextafter(jnp.asarray(-1.0, compute), jnp.asarray(0.0, compute))
    z = jnp.sqrt(jnp.asarray(2.0, compute)) * jax.lax.erf_inv(
        jnp.maximum(2.0 * u[:, :n] - 1.0, lowest)
    )
    idx = jnp.minimum(jnp.floor(u[:, n : n + 1] * n), n - 1).astype(jnp.int32)
    a_, b_ = jnp.asarray(a, compute), jnp.asarray(b, compute)
    if general:
        asym = jax.random.beta(k_beta, a_, b_, (fan_out, 1), compute)
    else:
        w = u[:, n + 1 :]
        asym = jnp.where(b_ == 1.0, w ** (1.0 / a_), 1.0 - w ** (1.0 / b_))
    v = z * (jnp.asarray(sigma, compute) / math.sqrt(fan_in)).astype(compute)
    v = jnp.where(jnp.arange(n)[None, :] == idx, asym, v)
    kernel = v[:, :fan_in].T.reshape(shape).astype(dtype)
    bias = v[:, fan_in].astype(dtype)
    return kernel, bias


@runtime_checkable
class PairedInitializer(Protocol):
    """An initializer that draws a layer's kernel and bias jointly.

    Any object with a ``pair(key, kernel_shape, dtype) -> (kernel, bias)`` method. The
    relujax ``MLP`` and ``CNN`` modules (NNX and Linen) recognise it as ``kernel_init``
    and then take the bias from the same draw. :func:`rai` is the one relujax ships.
    """

    def pair(
        self, key: Array, kernel_shape: tuple[int, ...], dtype: DTypeLike | None = None
    ) -> tuple[Array, Array]: ...


@dataclasses.dataclass(frozen=True)
class RAI:
    """The initializer :func:`rai` returns: a kernel initializer with a :meth:`pair` method.

    Attributes:
      sigma: scale of the symmetric part; its std is ``sigma / sqrt(fan_in)``.
      beta: ``(alpha, beta)`` of the asymmetric Beta distribution.
      dtype: default dtype of the arrays (float32 when None).
    """

    sigma: float = RAI_SIGMA
    beta: tuple[float, float] = RAI_BETA
    dtype: DTypeLike | None = None

    def __post_init__(self) -> None:
        _validation.real("rai: sigma", self.sigma, minimum=0.0)
        try:
            a, b = self.beta
        except (TypeError, ValueError):
            raise TypeError(f"rai: beta must be a pair (alpha, beta), got {self.beta!r}.") from None
        _validation.real("rai: beta[0]", a, minimum=0.0, strict=True)
        _validation.real("rai: beta[1]", b, minimum=0.0, strict=True)
        if self.dtype is not None:
            _checks.dtype("rai", self.dtype, complex_ok=False)

    def pair(
        self, key: Array, kernel_shape: tuple[int, ...], dtype: DTypeLike | None = None
    ) -> tuple[Array, Array]:
        """Draws a (kernel, bias) pair jointly.

        Args:
          key: a PRNG key (typed, or a legacy ``jax.random.PRNGKey``: equal results).
          kernel_shape: ``(*window, in, out)``, at least 2-D, no zero-sized axis.
          dtype: a floating dtype for both arrays (the instance's ``dtype``, else float32,
            when None).

        Returns:
          ``(kernel, bias)`` with shapes ``kernel_shape`` and ``(kernel_shape[-1],)``.
        """
        return self._pair(key, kernel_shape, dtype, param="kernel_shape")

    def __call__(self, key: Array, shape: tuple[int, ...], dtype: DTypeLike | None = None) -> Array:
        """The kernel half of :meth:`pair` (Flax initializer signature)."""
        return self._pair(key, shape, dtype, param="shape")[0]

    def _pair(
        self, key: Array, kernel_shape: tuple[int, ...], dtype: DTypeLike | None, *, param: str
    ) -> tuple[Array, Array]:
        typed = _checks.key("rai", key)
        shape = _checks.shape("rai", kernel_shape, param=param)
        fan_in, _ = _checks.fans("rai", shape, param=param)
        dt = _checks.dtype("rai", self.dtype if dtype is None else dtype, complex_ok=False)
        a, b = self.beta
        general = float(a) != 1.0 and float(b) != 1.0
        return _draw(typed, shape, fan_in, float(self.sigma), float(a), float(b), general, dt)


def rai(
    *,
    sigma: float = RAI_SIGMA,
    beta: tuple[float, float] = RAI_BETA,
    dtype: DTypeLike | None = None,
) -> RAI:
    r"""Randomized asymmetric initialization (RAI), as a kernel initializer and a pair.

    Lu, Shin, Su, Karniadakis, "Dying ReLU and Initialization: Theory and Numerical
    Examples", Commun. Comput. Phys. 28 (2020) 1671-1706, arXiv:1903.06733.

    For every output unit ``j`` the ``fan_in`` incoming weights and the bias form one
    vector :math:`V_j \in \mathbb{R}^{\text{fan\_in} + 1}` (bias last). Then

    .. math::
        V_{jk} \sim \mathcal{N}\!\left(0, \frac{\sigma^2}{\text{fan\_in}}\right), \qquad
        k_j \sim \mathcal{U}\{0, \dots, \text{fan\_in}\}, \qquad
        V_{j k_j} \leftarrow \beta_j \sim \operatorname{Beta}(2, 1)

    i.e. exactly one entry of each unit, chosen uniformly among weights and bias, is
    replaced by a positive Beta(2, 1) sample (density :math:`2x` on [0, 1]). The positive
    entry makes a unit far less likely to be born dead than under symmetric schemes,
    whose units are all dead with positive probability in deep narrow nets (the paper's
    theorem). The defaults, Beta(2, 1) and ``sigma = 0.6007`` with the variance divided by
    ``fan_in`` (not ``fan_in + 1``), are those of public implementations of RAI; both are
    parameters here. Note that they
    do not preserve the forward second moment the way He initialization does: by the
    moments below, :math:`E[z^2] \approx 0.86\,\overline{\tilde x^2}` before the ReLU.

    Moments, exact for any input ``x`` (with :math:`\tilde x = (x, 1)`):
    :math:`E[V_j \cdot \tilde x] = E[\beta]\,\overline{\tilde x}` and
    :math:`E[(V_j \cdot \tilde x)^2] = (\sigma^2 + E[\beta^2])\,\overline{\tilde x^2}`
    (bars are means over the ``fan_in + 1`` entries; :math:`E[\beta] = 2/3`,
    :math:`E[\beta^2] = 1/2` for Beta(2, 1)).

    Kernel layout is Flax's: ``kernel_shape = (*window, in, out)``; ``fan_in`` is the
    product of every axis but the last, ``fan_out`` the last. Called as a plain
    initializer, it returns the kernel half of a joint draw (the bias half is then
    discarded, so one unit in ``fan_in + 1`` has no Beta entry); use its ``pair(key,
    kernel_shape, dtype=None) -> (kernel, bias)`` method, or pass it (or the name ``"rai"``)
    as ``kernel_init`` to relujax's ``MLP``/``CNN``, to get both halves.

    Args:
      sigma: scale of the symmetric part, N(0, sigma**2 / fan_in); >= 0.
      beta: ``(alpha, beta)`` > 0 of the asymmetric entry's Beta distribution.
      dtype: default floating dtype (float32 when None).

    Returns:
      An initializer ``init(key, shape, dtype=dtype) -> kernel`` with a method
      ``pair(key, kernel_shape, dtype=dtype) -> (kernel, bias)``
      (a :class:`PairedInitializer`).

    Examples:
      >>> import jax, jax.numpy as jnp, relujax
      >>> kernel, bias = relujax.init.rai().pair(jax.random.key(0), (3, 3, 2, 5))  # a conv
      >>> kernel.shape, bias.shape, kernel.dtype
      ((3, 3, 2, 5), (5,), dtype('float32'))
      >>> kernel, bias = relujax.init.rai(sigma=0.0).pair(jax.random.key(0), (18, 5))
      >>> (jnp.count_nonzero(kernel, axis=0) + (bias != 0)).tolist()  # one Beta entry per unit
      [1, 1, 1, 1, 1]
    """
    try:
        pair = tuple(beta)
    except TypeError:
        raise TypeError(f"rai: beta must be a pair (alpha, beta), got {beta!r}.") from None
    return RAI(sigma=sigma, beta=pair, dtype=dtype)  # type: ignore[arg-type]
