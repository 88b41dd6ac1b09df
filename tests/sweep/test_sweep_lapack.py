"""A batched CPU LAPACK call in a multi-device sweep is an early error on jaxlib < 0.12, where
it deadlocks XLA's thread pool, instead of a program that never finishes."""

import textwrap

import jax
import jax.numpy as jnp
from script_runner import run_python

from relujax.sweep import _lapack


def lowered(f, *shapes):
    return jax.jit(f).lower(*(jax.ShapeDtypeStruct(s, jnp.float32) for s in shapes)).as_text()


def test_batched_decompositions_are_found_in_real_lowered_programs():
    qr = lowered(jax.vmap(jnp.linalg.qr), (4, 8, 8))
    svd = lowered(lambda a: jnp.linalg.svd(a, compute_uv=False), (3, 8, 5))
    found = _lapack.batched_lapack_calls(qr) + _lapack.batched_lapack_calls(svd)
    assert {shape for _, shape in found} == {(4, 8, 8), (3, 8, 5)}
    targets = {target for target, _ in found}
    assert {"lapack_sgeqrf_ffi", "lapack_sgesdd_ffi"} <= targets, targets
    # One matrix, or a map of single matrices (relujax's feature_rank), is not a batch.
    assert _lapack.batched_lapack_calls(lowered(jnp.linalg.qr, (8, 8))) == []
    mapped = lowered(lambda a: jax.lax.map(jnp.linalg.qr, a), (4, 8, 8))
    assert _lapack.batched_lapack_calls(mapped) == []
    assert _lapack.batched_lapack_calls(lowered(jnp.linalg.qr, (1, 8, 8))) == []


def test_at_risk_only_for_several_cpu_devices_on_old_jaxlib(monkeypatch):
    cpu = jax.devices("cpu")[0]
    monkeypatch.setattr(_lapack, "_jaxlib_version", lambda: (0, 10))
    assert _lapack.at_risk([cpu, cpu]) and not _lapack.at_risk([cpu])
    monkeypatch.setattr(_lapack, "_jaxlib_version", lambda: (0, 12))
    assert not _lapack.at_risk([cpu, cpu])


ORTHO = textwrap.dedent(
    """
    import dataclasses, os, sys
    os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=2"
    import jax
    from relujax import data, init, sweep

    @dataclasses.dataclass(frozen=True)
    class Orthogonal(sweep.Intervention):  # a batched QR under the config vmap
        name = "ortho"
        hyperparameters = {"eps": 0.0}  # noqa: RUF012

        def init(self, params):
            return ()

        def apply(self, ctx, params, opt_state, state):
            def one(a):
                if a.ndim == 2 and a.shape[0] == a.shape[1]:
                    q = init.get("orthogonal")(ctx.key, a.shape, a.dtype)
                    return a + ctx.hparams["eps"] * q
                return a
            return jax.tree.map(one, params), opt_state, state

        def metrics(self, state):
            return {}

    ds = data.gaussian_mixture(n_train=128, n_test=16, dim=16, num_classes=3)
    configs = [sweep.Config("constant", 1e-2, seed=s, intervention={"eps": 1e-3}) for s in range(4)]
    try:
        sweep.run(configs, ds, steps=4, model=sweep.MLPSpec((16,)), batch_size=8, eval_every=2,
                  probe_size=16, intervention=Orthogonal(), strategy="vmap")
    except ValueError as e:
        print("REFUSED", e)
    else:
        print("RAN")
    """
)


def test_a_batched_qr_on_two_cpu_devices_is_refused_or_runs_never_hangs():
    proc = run_python(ORTHO, what="a 2-device sweep with a batched QR")
    if _lapack._jaxlib_version() < _lapack.FIXED_IN:
        assert "REFUSED" in proc.stdout and "lapack_sgeqrf" in proc.stdout, proc.stdout
        assert "strategy='map'" in proc.stdout
    else:
        assert proc.stdout.strip() == "RAN", proc.stdout
