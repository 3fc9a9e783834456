"""RODEO (Shi, Zhou, Hwang, Titsias & Mackey 2022): RLOO with discrete Stein operator control variates.

The Stein operator is the generator of the random-scan Gibbs chain of the factorised
Bernoulli q (single-bit flips):

    (A g)(x) = (1/D) sum_i q_i(not x_i) [g(x^(i)) - g(x)],

which has ``E_q[(A g)(x)] = 0`` for every g. For sample k the control functions
``h_k, H_k`` are built from the *other* samples only: each other sample j gives
``NN(df/db(b_j) . (y - b_j), f(b_j))`` (2 outputs), averaged over j != k. The estimate is

    (1/K) sum_k [ (f_k - mean_{j != k}(f_j + alpha (A h_j)(b_j))) (b_k - theta)
                  + beta (A[H_k(.) (. - theta)])(b_k) ].

The official code materialises every one-bit-flip neighbour (a (K, D, D) tensor per data
point) and runs the control network densely on all of them. Here a neighbour's network input is
the centre's plus one term, ``s_i = s + df/db_i (1 - 2 b_i)``, ``A`` of a vector field is
computed in closed form, and the network at the D neighbours of a sample (one shared second
input z) is evaluated as a piecewise-linear function of s: sort its H kinks, prefix-sum the
units' slopes and intercepts, locate each input (`SteinControlNet.apply_sorted`), with a
custom backward pass of the same cost. A batch is combined at once (not vmapped), so every
control-network row of the batch goes through one sort, one scan and one scatter:
O(K^2 (D + H) log H) per data point instead of O(K^2 D^2 + K^2 D H).
"""

from __future__ import annotations

import functools
import math
from typing import Literal

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, PRNGKeyArray

from .._errors import ConfigError
from ._base import AbstractIIDEstimator, check_num_samples


class SteinControlNet(eqx.Module):
    """``[h, H](s, z) = W2 LeakyReLU_0.3(Wx s + bx + Wz z + bz) + b2``: two scalar inputs,
    ``width`` hidden units, two outputs (the official `SteinControlNNSingleLayer`; Keras
    glorot-uniform kernels stored as (in, out), zero biases)."""

    wx: Float[Array, "1 H"]
    bx: Float[Array, " H"]
    wz: Float[Array, "1 H"]
    bz: Float[Array, " H"]
    w2: Float[Array, "H 2"]
    b2: Float[Array, " 2"]
    negative_slope: float = eqx.field(static=True, default=0.3)

    def __init__(self, width: int = 100, *, key: PRNGKeyArray, negative_slope: float = 0.3):
        k1, k2, k3 = jax.random.split(key, 3)

        def glorot(k, fan_in, fan_out):
            lim = math.sqrt(6.0 / (fan_in + fan_out))
            return jax.random.uniform(k, (fan_in, fan_out), jnp.float32, -lim, lim)

        self.wx, self.bx = glorot(k1, 1, width), jnp.zeros(width)
        self.wz, self.bz = glorot(k2, 1, width), jnp.zeros(width)
        self.w2, self.b2 = glorot(k3, width, 2), jnp.zeros(2)
        self.negative_slope = negative_slope

    def apply(self, s: Float[Array, "*m n"], z: Float[Array, "*m"]) -> Float[Array, "*m n 2"]:
        """The network at inputs ``(s[..., i], z[...])``. The first layer is written as one
        matrix product ``[s, z, 1] @ [Wx; Wz; bx + bz]`` so that its backward pass is matrix
        products too (broadcasting forms have slow reduction transposes on CPU)."""
        zb = jnp.broadcast_to(z[..., None], s.shape)
        inputs = jnp.stack([s, zb, jnp.ones_like(s)], axis=-1)  # (*m, n, 3)
        w1 = jnp.stack([self.wx[0], self.wz[0], self.bx + self.bz])  # (3, H)
        pre = inputs @ w1  # (*m, n, H)
        a = self.negative_slope
        # LeakyReLU as ((1 + a) x + (1 - a) |x|) / 2: the same values, and a faster backward
        # pass on CPU than the select in `jax.nn.leaky_relu`.
        act = (0.5 * (1.0 + a)) * pre + (0.5 * (1.0 - a)) * jnp.abs(pre)
        out = act @ self.w2
        return out + jnp.broadcast_to(self.b2, out.shape)

    def apply_sorted(self, s: Float[Array, "*m n"], z: Float[Array, "*m"]) -> Float[Array, "*m n 2"]:
        """The same values as ``apply(s, z)`` when many ``s`` share each ``z``, in
        O((n + H) log H) per row instead of O(n H).

        For fixed z the network is a piecewise-linear function of the scalar s, with a kink where
        each hidden unit switches sign (``s = -c_h / wx_h``, ``c = z wz + bx + bz``). With
        ``LeakyReLU(x) = a x + (1 - a) relu(x)`` the output is
        ``a (s sum_h w2_h wx_h + sum_h w2_h c_h) + (1 - a) sum_{h active at s} w2_h (s wx_h + c_h) + b2``;
        the active units are a prefix (wx_h > 0) or suffix (wx_h < 0) of the units sorted by kink,
        so prefix sums and a binary search give every output. The backward pass (a custom VJP)
        uses the same structure: each unit's gradient needs sums over the inputs at which it is
        active, a histogram of the inputs over the sorted kinks and a prefix sum. Gradients with
        respect to every parameter and input are exact (the active sets are locally constant)."""
        return jnp.stack(self.apply_sorted_split(s, z), axis=-1)

    def apply_sorted_split(
        self, s: Float[Array, "*m n"], z: Float[Array, "*m"]
    ) -> tuple[Float[Array, "*m n"], Float[Array, "*m n"]]:
        """`apply_sorted` as its two outputs ``(h, H)``, each of the shape of `s` (elementwise
        work on a trailing axis of length 2 is slow on CPU)."""
        n = s.shape[-1]
        zr = jnp.reshape(z, (-1, 1))  # rows (R, 1)
        c = zr * self.wz + (self.bx + self.bz)[None, :]  # (R, H)
        out0, out1 = _piecewise_linear_net(self.negative_slope, self.wx[0], c, self.w2, self.b2, s.reshape(-1, n))
        return out0.reshape(s.shape), out1.reshape(s.shape)

    def __call__(self, s: Float[Array, ""], z: Float[Array, ""]) -> Float[Array, " 2"]:
        return self.apply(s[None], z)[0]


class RODEO(AbstractIIDEstimator):
    """RODEO with K >= 2 samples.

    - ``control="network"``: the paper's learned control functions (`SteinControlNet`).
    - ``control="taylor"``: fixed ones with no network, ``h(y) = f(b_j) + df/db(b_j).(y - b_j)``
      (the first-order Taylor expansion of f around the other samples) and ``H = 1``.

    ``alpha`` and ``beta`` (initialised at 0, so RODEO starts as RLOO) and the network are
    learned by minimising ``mean(grad**2)``. Set them and do not train them for a fixed estimator.
    At K = 2 this is the official ``discrete_stein_avg``, for K > 2 ``discrete_stein_output_avg``
    (they coincide at K = 2).
    """

    num_samples: int = eqx.field(static=True)
    control: str = eqx.field(static=True)
    alpha: Float[Array, ""]
    beta: Float[Array, ""]
    net: SteinControlNet | None
    uses_gradient = True

    def __init__(
        self,
        num_samples: int = 2,
        *,
        control: Literal["network", "taylor"] = "network",
        width: int = 100,
        alpha: float = 0.0,
        beta: float = 0.0,
        key: PRNGKeyArray | None = None,
    ):
        check_num_samples("RODEO", num_samples, 2)
        if control not in ("network", "taylor"):
            raise ConfigError(f"RODEO control must be 'network' or 'taylor', not {control!r}")
        if control == "network" and key is None:
            raise ConfigError("RODEO(control='network') needs a `key` to initialise its control network")
        self.num_samples = num_samples
        self.control = control
        self.alpha = jnp.asarray(alpha, jnp.float32)
        self.beta = jnp.asarray(beta, jnp.float32)
        self.net = SteinControlNet(width, key=key) if control == "network" else None

    def _controls(self, b, f_b, grad_b):
        """For a batch (leading axis N): h and H at each sample (``(N, K)`` each) and at its D
        neighbours (``(N, K, D)`` each), averaged over the control functions built from each other
        sample j != k."""
        k = self.num_samples
        others = np.array([[j for j in range(k) if j != i] for i in range(k)])  # (K, K-1), static
        delta = 1.0 - 2.0 * b  # neighbour i of b_k differs by delta_k[i] in coordinate i
        gb = jnp.sum(grad_b * b, axis=-1)  # (N, K): g_j . b_j
        g_o, f_o = grad_b[:, others], f_b[:, others]  # (N, K, K-1, D), (N, K, K-1)
        centre = jnp.einsum("nkd,nkmd->nkm", b, g_o) - gb[:, others]  # g_j . (b_k - b_j)
        nbrs = centre[..., None] + g_o * delta[:, :, None, :]  # (N, K, K-1, D)
        if self.net is None:
            h_x, big_h_x = centre + f_o, jnp.ones_like(centre)
            h_n, big_h_n = nbrs + f_o[..., None], jnp.ones_like(nbrs)
        else:
            ctrl_x = self.net.apply(centre[..., None], f_o)[..., 0, :]  # (N, K, K-1, 2)
            h_x, big_h_x = ctrl_x[..., 0], ctrl_x[..., 1]
            # (N, K, K-1, D) each: D inputs share each z, so use the piecewise-linear evaluation
            h_n, big_h_n = self.net.apply_sorted_split(nbrs, f_o)
        if k == 2:  # one other sample: skip reductions over a length-1 axis (slow on CPU)
            return h_x[:, :, 0], big_h_x[:, :, 0], h_n[:, :, 0], big_h_n[:, :, 0]
        return tuple(jnp.mean(v, axis=2) for v in (h_x, big_h_x, h_n, big_h_n))

    def _combine(self, logits, b, f_b, grad_b) -> Float[Array, "N D"]:
        """`combine` for a batch: logits (N, D), b (N, K, D), f_b (N, K), grad_b (N, K, D). Written
        for a leading batch axis rather than vmapped, so that the control network sees all
        N K (K-1) rows at once."""
        d = b.shape[-1]
        theta = jax.nn.sigmoid(logits)[:, None, :]  # (N, 1, D)
        s = b - theta  # (N, K, D)
        delta = 1.0 - 2.0 * b
        w1 = jnp.where(b > 0.5, 1.0 - theta, theta)  # q_i(flipped value)
        h_x, big_h_x, h_n, big_h_n = self._controls(b, f_b, grad_b)
        # (A h)(b_k) = (1/D) sum_i w_i (h(b_k^(i)) - h(b_k))
        a_h = jnp.sum(w1 * (h_n - h_x[..., None]), axis=-1) / d  # (N, K)
        # (A [H (. - theta)])(b_k): neighbour i has (. - theta) = s_k + delta_i e_i
        whn = w1 * big_h_n
        a_hs = (s * (jnp.sum(whn, axis=-1) - big_h_x * jnp.sum(w1, axis=-1))[..., None] + whn * delta) / d
        vr = f_b + self.alpha * a_h
        k = self.num_samples
        adv = f_b - (jnp.sum(vr, axis=1, keepdims=True) - vr) / (k - 1)  # leave-one-out baseline
        return jnp.mean(adv[..., None] * s + self.beta * a_hs, axis=1)

    def combine(self, logits, b, f_b, grad_b) -> Float[Array, " D"]:
        return self._combine(logits[None], b[None], f_b[None], grad_b[None])[0]

    def combine_batch(self, logits, b, f_b, grad_b, *, chunk=None) -> Float[Array, "n D"]:
        n = logits.shape[0]
        if chunk is None or chunk >= n or n % chunk:
            return self._combine(logits, b, f_b, grad_b)
        split = lambda v: v.reshape((n // chunk, chunk) + v.shape[1:])  # noqa: E731
        out = jax.lax.map(lambda a: self._combine(*a), tuple(split(v) for v in (logits, b, f_b, grad_b)))
        return out.reshape(n, -1)


#: rows with at least this many inputs sort their kinks with the bitonic network (faster to run,
#: slower to compile than XLA's sort)
BITONIC_MIN_INPUTS = 64


def _bitonic_argsort(x: Float[Array, "*m P"]) -> tuple[Float[Array, "*m P"], Array]:
    """Sorted values and the permutation along the last axis (a power of two) by a bitonic
    network of reshapes and selects: several times faster on CPU than XLA's comparator sort for
    the short rows used here (the order of ties is arbitrary)."""
    *lead, n = x.shape
    idx = jax.lax.broadcasted_iota(jnp.int32, x.shape, x.ndim - 1)
    size = 2
    while size <= n:
        half = size // 2
        while half >= 1:
            nb = n // (2 * half)
            shape = (*lead, nb, 2, half)
            xb, ib = x.reshape(shape), idx.reshape(shape)
            lo_x, hi_x = xb[..., 0, :], xb[..., 1, :]
            lo_i, hi_i = ib[..., 0, :], ib[..., 1, :]
            ascending = jnp.asarray(((np.arange(nb) * 2 * half) & size == 0)[:, None])  # (nb, 1)
            ascending = ascending.reshape((1,) * len(lead) + (nb, 1))
            swap = jnp.where(ascending, lo_x > hi_x, lo_x < hi_x)
            x = jnp.stack([jnp.where(swap, hi_x, lo_x), jnp.where(swap, lo_x, hi_x)], axis=-2).reshape(x.shape)
            idx = jnp.stack([jnp.where(swap, hi_i, lo_i), jnp.where(swap, lo_i, hi_i)], axis=-2).reshape(x.shape)
            half //= 2
        size *= 2
    return x, idx


def _count_below(sorted_x: Float[Array, "R P"], s: Float[Array, "R n"]) -> Array:
    """``searchsorted(sorted_x[r], s[r])`` (the number of entries ``< s``) for every row, as two
    rounds of comparisons (block tops, then one block) with no loop: XLA's binary search is a
    while loop that runs slowly inside a large CPU program."""
    r, p = sorted_x.shape
    block = 8 if p % 8 == 0 else 1
    nb = p // block
    tops = sorted_x[:, block - 1 :: block]  # (R, nb): last entry of each block
    full = jnp.sum(tops[:, None, :] < s[:, :, None], axis=-1, dtype=jnp.int32)  # blocks wholly below s
    blocks = sorted_x.reshape(r, nb, block)
    part = _take(blocks, jnp.minimum(full, nb - 1))  # (R, n, block)
    within = jnp.sum(part < s[:, :, None], axis=-1, dtype=jnp.int32)
    return full * block + jnp.where(full < nb, within, 0)


def _cumsum(x: Float[Array, "R P F"]) -> Float[Array, "R P F"]:
    """Inclusive prefix sums along axis 1 (a log-depth scan: faster on CPU than XLA's
    reduce-window cumsum)."""
    return jax.lax.associative_scan(jnp.add, x, axis=1)


def _take(x: Array, idx: Array) -> Array:
    """``x[..., idx[..., i], :]`` along the second-to-last axis of `x`."""
    return jnp.take_along_axis(x, idx[..., None], axis=-2)


def _pl_forward(a, wx, c, w2, b2, s):
    """Rows: ``c`` (R, H), inputs ``s`` (R, n) -> the two outputs (R, n) each, and what the
    backward pass needs."""
    r, h = c.shape
    p = 1 << max(h - 1, 1).bit_length()  # padded to a power of two with units that never act
    pos = (wx >= 0)[None, :]
    safe = jnp.where(wx == 0, 1.0, wx)[None, :]
    kink = jnp.where((wx == 0)[None, :], jnp.where(c > 0, -jnp.inf, jnp.inf), -c / safe)  # (R, H)
    kink = jnp.pad(kink, [(0, 0), (0, p - h)], constant_values=jnp.inf)
    if s.shape[1] >= BITONIC_MIN_INPUTS:
        kink_sorted, order = _bitonic_argsort(kink)  # (R, P)
    else:  # few inputs per row: the sort is cheap either way and XLA's compiles much faster
        iota = jax.lax.broadcasted_iota(jnp.int32, kink.shape, 1)
        kink_sorted, order = jax.lax.sort((kink, iota), dimension=1, num_keys=1)
    slope = jnp.broadcast_to((wx[:, None] * w2)[None], (r, h, 2))  # (R, H, 2)
    icept = c[:, :, None] * w2[None]  # (R, H, 2)
    # A unit with wx >= 0 acts on inputs above its kink, one with wx < 0 below it, so the active
    # sums at an input with ``idx`` kinks below it are the prefix sums of the signed table
    # [slope, intercept] * (+1 | -1) plus the totals over the wx < 0 units.
    table = jnp.concatenate([slope, icept], axis=-1)  # (R, H, 4)
    neg_total = jnp.sum(jnp.where(pos[:, :, None], 0.0, table), axis=1)  # (R, 4)
    table = jnp.where(pos[:, :, None], table, -table)
    table = jnp.pad(table, [(0, 0), (0, p - h), (0, 0)])
    sums = _cumsum(_take(table, order))
    sums = jnp.concatenate([jnp.zeros_like(sums[:, :1]), sums], axis=1)  # (R, P + 1, 4)
    idx = _count_below(kink_sorted, s)  # (R, n): units with kink < s
    at = _take(sums, idx)  # (R, n, 4)
    sum_slope = jnp.sum(slope[0], axis=0)  # (2,)
    sum_icept = jnp.sum(icept, axis=1)  # (R, 2)
    outs, act_slopes = [], []
    for o in range(2):  # per output, on (R, n) arrays
        act_slope = at[..., o] + neg_total[:, o][:, None]
        act_icept = at[..., 2 + o] + neg_total[:, 2 + o][:, None]
        out = a * (s * sum_slope[o] + sum_icept[:, o][:, None]) + (1.0 - a) * (s * act_slope + act_icept)
        outs.append(out + b2[o])
        act_slopes.append(act_slope)
    return tuple(outs), (wx, c, w2, s, order, idx, tuple(act_slopes), sum_slope)


@functools.partial(jax.custom_vjp, nondiff_argnums=(0,))
def _piecewise_linear_net(a, wx, c, w2, b2, s):
    return _pl_forward(a, wx, c, w2, b2, s)[0]


def _pl_fwd(a, wx, c, w2, b2, s):
    return _pl_forward(a, wx, c, w2, b2, s)


def _pl_bwd(a, res, ct):
    wx, c, w2, s, order, idx, act_slopes, sum_slope = res
    ct0, ct1 = ct
    r, h = c.shape
    p = order.shape[-1]
    # Per input i: v_i = [ct_i s_i, ct_i]; per unit: the sum of v_i over the inputs at which it is
    # active. Sorted position q lies below input i iff q < idx_i: a histogram of v over idx and
    # prefix sums give the sums over inputs above (wx >= 0 units) and below (wx < 0 units) each kink.
    v = jnp.stack([ct0 * s, ct1 * s, ct0, ct1], axis=-1)  # (R, n, 4)
    rows = jnp.arange(r, dtype=jnp.int32)[:, None]
    flat = (idx + rows * (p + 1)).reshape(-1)  # one flat scatter (faster on CPU than a batched one)
    hist = jnp.zeros((r * (p + 1), 4), v.dtype).at[flat].add(v.reshape(-1, 4)).reshape(r, p + 1, 4)
    upto = _cumsum(hist)[:, :p]  # (R, P, 4): inputs with idx <= q, i.e. kink_q >= s_i
    total = jnp.sum(v, axis=1, keepdims=True)  # (R, 1, 4)
    # from sorted positions back to units (the inverse permutation), dropping the padding
    ar = jnp.arange(p, dtype=jnp.int32)
    inv = jnp.zeros((r * p,), jnp.int32).at[(order + rows * p).reshape(-1)].set(jnp.tile(ar, r))
    inv = inv.reshape(r, p)[:, :h]
    above_u, upto_u = _take(total - upto, inv), _take(upto, inv)  # (R, H, 4)
    act = jnp.where((wx >= 0)[None, :, None], above_u, upto_u)
    e = a * total + (1.0 - a) * act  # (R, H, 4): sums of [ct s, ct] over the inputs each unit sees
    e_s, e_c = e[..., 0:2], e[..., 2:4]
    d_w2 = jnp.sum(wx[None, :, None] * e_s + c[:, :, None] * e_c, axis=0)
    d_wx = jnp.sum(w2[None] * e_s, axis=(0, 2))
    d_c = jnp.sum(w2[None] * e_c, axis=-1)
    d_b2 = jnp.stack([jnp.sum(ct0), jnp.sum(ct1)])
    d_s = ct0 * (a * sum_slope[0] + (1.0 - a) * act_slopes[0]) + ct1 * (a * sum_slope[1] + (1.0 - a) * act_slopes[1])
    return d_wx, d_c, d_w2, d_b2, d_s


_piecewise_linear_net.defvjp(_pl_fwd, _pl_bwd)
