r"""The plasticity remedies of ``experiments.continual`` as ONE sweep intervention.

Every remedy is off at its default hyperparameters, so one compiled program trains plain
backprop and each remedy side by side (each configuration switches on one). After the
optimizer's update of step :math:`t` (``s = t + 1`` updates done), in this order:

- **L2-init** (Kumar et al. 2023): :math:`\theta \leftarrow \theta - c\,(\theta -
  \theta_0)` every step, ``l2_init`` :math:`= c = \alpha\lambda` (SGD step size times the
  L2 strength: SGD on :math:`L + \frac{\lambda}{2}\lVert\theta-\theta_0\rVert^2`, the
  penalty's gradient taken after the loss step instead of before, a difference of order
  :math:`\alpha^2`);
- **shrink and perturb** (Ash & Adams 2020): :func:`relujax.remedies.shrink_perturb`,
  :math:`\theta \leftarrow \lambda\theta + \sigma\epsilon` every ``sp_every`` updates
  (0 = off);
- **ReDo** (Sokar et al. 2023): every ``redo_every`` updates the units whose score
  :math:`E|h_i| / \overline{E|h|} \le` ``redo_tau`` are recycled
  (:func:`relujax.remedies.recycle`: fresh incoming weights, zero outgoing weights) in the
  configurations with ``redo = 1``. The
  score's :math:`E|h_i|` is a running average over the steps' minibatches (decay 0.99, the
  continual-backprop decay), because online training sees one example per step, on which a
  ReLU that is merely off would look dead;
- **continual backprop** (Dohare et al. 2024): :func:`relujax.remedies.continual_backprop`,
  replacement rate ``cbp_rate`` (0 = off), maturity and decay static;
- **layer reset** (Nikishin et al. 2022): the output layer re-initialized every
  ``reset_every`` updates (:func:`relujax.remedies.reset_layers`) where ``reset = 1``,
  after the first update of each new task (update :math:`t = k\,` ``reset_every``), so
  that an evaluation at a task's end sees a head trained on that task.

Records ``replaced``: units recycled by ReDo or continual backprop so far.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp

from relujax import init as relujax_init
from relujax import remedies, sweep
from relujax.remedies import interventions

#: Running-average decay of ReDo's activation score.
SCORE_DECAY = 0.99


@dataclasses.dataclass(frozen=True)
class Plasticity(sweep.Intervention):
    """Backprop, L2-init, shrink and perturb, ReDo, continual backprop or layer reset, per
    configuration (see the module docstring).

    Attributes:
      layers: hidden layers of the MLP (its parameters ``params["layers"][0..layers]``).
      kernel_init: initializer of every fresh weight (recycled units, reset layer).
      cbp_maturity: continual backprop's maturity threshold.
      cbp_decay: continual backprop's utility decay.
      redo_every: ReDo's period (for the configurations with ``redo = 1``).
      reset_every: the layer reset's period (for those with ``reset = 1``).

    The periods are static, so the recycling and the reset sit in a ``lax.cond`` on the
    (unbatched) step and cost nothing on the other steps even when configurations are
    vmapped; the per-configuration switches ``redo`` and ``reset`` act inside it.
    """

    name = "plasticity"
    hyperparameters = {  # noqa: RUF012
        "l2_init": 0.0,
        "sp_every": 0.0,
        "sp_shrink": 1.0,
        "sp_sigma": 0.0,
        "redo": 0.0,
        "redo_tau": 0.1,
        "cbp_rate": 0.0,
        "reset": 0.0,
    }
    needs_stats = True
    layers: int = 1
    kernel_init: str = "he_uniform"
    cbp_maturity: float = 100.0
    cbp_decay: float = 0.99
    redo_every: int = 1000
    reset_every: int = 10_000

    def _layout(self) -> remedies.Layout:
        paths = [("layers", i) for i in range(self.layers + 1)]
        return remedies.sequential(paths, kernel_init=self.kernel_init)

    def _cbp(self, rate: Any) -> interventions.Intervention:
        return interventions.get(
            "continual_backprop",
            layout=self._layout(),
            replacement_rate=rate,
            decay=self.cbp_decay,
            maturity=self.cbp_maturity,
        )

    def init(self, params: Any) -> Any:
        score = tuple(
            jnp.zeros(params["layers"][i]["kernel"].shape[-1], jnp.float32)
            for i in range(self.layers)
        )
        return (self._cbp(0.0).init(params), score, jnp.zeros((), jnp.float32))

    def _fresh(self, params: Any, key: Any) -> Any:
        """A fresh draw of every kernel (``kernel_init``), biases 0."""
        init = relujax_init.get(self.kernel_init)
        leaves, treedef = jax.tree_util.tree_flatten_with_path(params)
        out = []
        for i, (path, leaf) in enumerate(leaves):
            is_kernel = any(getattr(k, "key", None) == "kernel" for k in path)
            if is_kernel:
                out.append(init(jax.random.fold_in(key, i), leaf.shape, leaf.dtype))
            else:
                out.append(jnp.zeros_like(leaf))
        return jax.tree_util.tree_unflatten(treedef, out)

    def apply(self, ctx: Any, params: Any, opt_state: Any, state: Any) -> tuple[Any, Any, Any]:
        hp = ctx.hparams
        s = ctx.step + 1
        k_sp, k_redo, k_cbp, k_reset = jax.random.split(ctx.key, 4)
        cbp_state, score, replaced = state
        layout = self._layout()

        c = hp["l2_init"]
        params = jax.tree.map(lambda p, p0: p - c * (p - p0), params, ctx.initial_params)

        params = remedies.shrink_perturb(
            params,
            k_sp,
            shrink=hp["sp_shrink"],
            sigma=hp["sp_sigma"],
            when=remedies.due(s, hp["sp_every"]),
        )

        stats = list(ctx.stats.values())
        score = tuple(
            SCORE_DECAY * old + (1 - SCORE_DECAY) * st.abs_mean
            for old, st in zip(score, stats, strict=True)
        )
        redo_due = remedies.due(s, self.redo_every)
        masks = tuple(
            remedies.dormant_units(sc, tau=hp["redo_tau"]) & redo_due & (hp["redo"] > 0)
            for sc in score
        )

        def recycle(p, o):
            out = remedies.recycle(p, masks, k_redo, layout=layout, opt_state=o)
            return out.params, out.opt_state

        params, opt_state = jax.lax.cond(redo_due, recycle, lambda p, o: (p, o), params, opt_state)
        replaced = replaced + sum(jnp.sum(m).astype(jnp.float32) for m in masks)

        before = cbp_state.age
        params, opt_state, cbp_state = self._cbp(hp["cbp_rate"]).update(
            cbp_state, params, opt_state, k_cbp, s, ctx.stats
        )
        # A replaced unit's age restarts at 0; every other unit's grows by one.
        replaced = replaced + sum(
            jnp.sum((a == 0) & (b > 0)).astype(jnp.float32)
            for a, b in zip(cbp_state.age, before, strict=True)
        )

        def reset(p, o):
            return remedies.reset_layers(
                p,
                k_reset,
                init=lambda k: self._fresh(p, k),
                layers=[("layers", self.layers)],
                opt_state=o,
                when=hp["reset"] > 0,
            )

        # After the first update of each task (update t = k * reset_every, k >= 1), so that the
        # evaluation at a task's end sees a head trained on that task.
        reset_due = remedies.due(ctx.step, self.reset_every)
        params, opt_state = jax.lax.cond(reset_due, reset, lambda p, o: (p, o), params, opt_state)
        return params, opt_state, (cbp_state, score, replaced)

    def metrics(self, state: Any) -> dict[str, Any]:
        return {"replaced": state[2]}
