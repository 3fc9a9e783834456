"""CondInstanceNorm++ (NCSN's normalisation), optionally followed by ELU, fused into one pass over memory on CPU.

Two primitives on a batch of NHWC images, forward and backward (``cin.cc``'s handlers, built with the
convolutions, `zoo._onednn._build`), each lowered on CPU to its handler and elsewhere to the same computation
in JAX (`reference_forward`, `reference_backward`): ``cin_forward(x, gamma, alpha, beta, elu=...) -> (y,
stats)`` and ``cin_backward(x, y, stats, gamma, alpha, dy, elu=...) -> (dx, dgamma, dalpha, dbeta)``. `jax.vmap`
folds mapped axes into the batch (one call); derivatives of either (second order: sliced score matching
differentiates the network's vector-Jacobian products) are those of the JAX reference. zoo/ncsn/_network.py's
`cin_plus_plus` binds them as its forward and backward pass where `binds` says, else runs the reference.

Why: XLA:CPU runs a norm and its ELU as ~8 loop fusions and reductions forward and backward, each reading the
activation from memory, each on one thread, while the other core waits (0.39 s of the NCSN MNIST training step's
1.9 s ran one op at a time, the other core idle); the handlers read each image once into the cache and work there,
one image per thread (cards/ncsn-bench.md, "Stop 27").
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax.extend.core import Primitive
from jax.interpreters import ad, batching, mlir
from jaxtyping import Array, Float

from . import available


__all__ = ["binds", "cin_backward", "cin_forward", "reference_backward", "reference_forward"]

_EPS = 1e-5


def binds(*arrays: Array) -> bool:
    """Whether the norm runs on the fused handlers for these operands: all float32, on CPU with zoo's native
    library (`zoo._onednn.available`: not inside `xla_kernels`, not with ``ZOO_ONEDNN=0``)."""
    return all(a.dtype == jnp.float32 for a in arrays) and available()


# -- the computation in JAX: other platforms, other dtypes, derivatives -------------------------------
def _forward_one(x, g, a, b, *, elu: bool):
    c = x.shape[-1]
    mu = jnp.mean(x, axis=(0, 1))
    s = jax.lax.rsqrt(jnp.mean(jnp.square(x - mu[None, None]), axis=(0, 1)) + _EPS)  # biased, as nn.InstanceNorm2d
    u = mu - jnp.mean(mu)
    t = jax.lax.rsqrt(jnp.sum(jnp.square(u)) / (c - 1) + _EPS)  # unbiased, as torch.var
    z = (x - mu[None, None]) * (g * s)[None, None] + (g * a * u * t + b)[None, None]
    return (jax.nn.elu(z) if elu else z), jnp.stack([mu, s, u, jnp.broadcast_to(t, mu.shape)])


def _backward_one(x, y, stats, g, a, dy, *, elu: bool):
    mu, s, u, t = stats[0], stats[1], stats[2], stats[3, 0]
    c, n = x.shape[-1], x.shape[0] * x.shape[1]
    dz = jnp.where(y > 0, dy, dy * (y + 1)) if elu else dy  # ELU' from its output: 1, or exp(z) = y + 1
    x_hat = (x - mu[None, None]) * s[None, None]
    s1 = jnp.sum(dz, axis=(0, 1))
    s2 = jnp.sum(dz * x_hat, axis=(0, 1))
    # Through mu_tilde = u t (u = mu - mean(mu), t = 1/sqrt(var_unbiased(mu) + eps)) to mu.
    q = g * a * s1
    du = t * q - t**3 * u * jnp.sum(q * u) / (c - 1)
    d_mu = du - jnp.mean(du)
    # The instance norm's own backward, plus the channel means' path (d mu / d x = 1/n).
    gs = g * s
    dx = gs[None, None] * dz - x_hat * (gs * s2 / n)[None, None] + ((d_mu - gs * s1) / n)[None, None]
    mu_t = u * t
    return dx, s2 + a * mu_t * s1, g * mu_t * s1, s1


def reference_forward(
    x: Float[Array, "n h w c"], gamma: Float[Array, "n c"], alpha: Float[Array, "n c"], beta: Float[Array, "n c"],
    *, elu: bool,
) -> tuple[Float[Array, "n h w c"], Float[Array, "n 4 c"]]:
    """``y = act(gamma * (x_hat + alpha * mu_tilde) + beta)`` per image (act: ELU or none) and its stats: the
    channel means, their 1/std (biased variance), the centred channel means and their 1/std (unbiased,
    broadcast over the channels)."""
    return jax.vmap(functools.partial(_forward_one, elu=elu))(x, gamma, alpha, beta)


def reference_backward(
    x: Float[Array, "n h w c"], y: Float[Array, "n h w c"], stats: Float[Array, "n 4 c"], gamma: Float[Array, "n c"],
    alpha: Float[Array, "n c"], dy: Float[Array, "n h w c"], *, elu: bool,
) -> tuple[Float[Array, "n h w c"], Float[Array, "n c"], Float[Array, "n c"], Float[Array, "n c"]]:
    """The forward's vector-Jacobian product for the cotangent `dy`: ``(dx, dgamma, dalpha, dbeta)``, from its
    input, output and stats: two per-channel sums over each image and one elementwise pass."""
    return jax.vmap(functools.partial(_backward_one, elu=elu))(x, y, stats, gamma, alpha, dy)


# -- the primitives ----------------------------------------------------------------------------------
def _primitive(name: str, target: str, reference, shapes) -> Primitive:
    p = Primitive(name)
    p.multiple_results = True
    p.def_abstract_eval(lambda *avals, elu: shapes(*avals))
    p.def_impl(lambda *args, elu: jax.jit(functools.partial(p.bind, elu=elu))(*args))
    mlir.register_lowering(p, mlir.lower_fun(reference, multiple_results=True))  # any platform
    ffi_rule = jax.ffi.ffi_lowering(target)
    mlir.register_lowering(p, lambda ctx, *args, elu: ffi_rule(ctx, *args, elu=bool(elu)), platform="cpu")

    def jvp(primals, tangents, *, elu):
        tangents = [ad.instantiate_zeros(t) for t in tangents]
        out, tout = jax.jvp(functools.partial(reference, elu=elu), tuple(primals), tuple(tangents))
        return list(out), list(tout)

    def batch(args, dims, *, elu):
        # Each mapped axis folds into the images' axis (unmapped operands broadcast): one call.
        size = next(a.shape[d] for a, d in zip(args, dims) if d is not None)
        args = [jnp.moveaxis(a, d, 0) if d is not None else jnp.broadcast_to(a, (size, *a.shape))
                for a, d in zip(args, dims)]  # fmt: skip
        outs = p.bind(*(a.reshape(-1, *a.shape[2:]) for a in args), elu=elu)
        return [o.reshape(size, -1, *o.shape[1:]) for o in outs], [0] * len(outs)

    ad.primitive_jvps[p] = jvp
    batching.primitive_batchers[p] = batch
    return p


def _forward_shapes(x, gamma, alpha, beta):
    return [jax.core.ShapedArray(x.shape, x.dtype), jax.core.ShapedArray((x.shape[0], 4, x.shape[3]), x.dtype)]


def _backward_shapes(x, y, stats, gamma, alpha, dy):
    return [jax.core.ShapedArray(x.shape, x.dtype)] + [jax.core.ShapedArray(gamma.shape, x.dtype)] * 3


cin_forward_p = _primitive("zoo_cin_forward", "zoo_cin_fwd", reference_forward, _forward_shapes)
cin_backward_p = _primitive("zoo_cin_backward", "zoo_cin_bwd", reference_backward, _backward_shapes)


def cin_forward(x, gamma, alpha, beta, *, elu: bool):
    """`reference_forward`, on the fused handler on CPU where `binds`."""
    if binds(x, gamma, alpha, beta):
        return tuple(cin_forward_p.bind(x, gamma, alpha, beta, elu=bool(elu)))
    return reference_forward(x, gamma, alpha, beta, elu=elu)


def cin_backward(x, y, stats, gamma, alpha, dy, *, elu: bool):
    """`reference_backward`, on the fused handler on CPU where `binds`."""
    if binds(x, y, stats, gamma, alpha, dy):
        return tuple(cin_backward_p.bind(x, y, stats, gamma, alpha, dy, elu=bool(elu)))
    return reference_backward(x, y, stats, gamma, alpha, dy, elu=elu)
