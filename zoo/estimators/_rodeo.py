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
point). Here a neighbour's network input is the centre's plus one term,
``s_i = s + df/db_i (1 - 2 b_i)``, and ``A`` of a vector field is computed in closed form,
so a step costs O(K^2 D H) instead of O(K^2 D^2 + K^2 D H).
"""

from __future__ import annotations

import math
from typing import Literal

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, PRNGKeyArray

from .._errors import ConfigError
from ._base import AbstractIIDEstimator, check_num_samples, leave_one_out_mean


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

    def apply_sorted(self, s: Float[Array, " n"], z: Float[Array, ""]) -> Float[Array, "n 2"]:
        """The same values as ``apply(s, z)`` for one ``z`` and many ``s``, in
        O((n + H) log H) instead of O(n H).

        For fixed z the network is a piecewise-linear function of the scalar s, with a kink where
        each hidden unit switches sign (``s = -c_h / wx_h``, ``c = z wz + bx + bz``). With
        ``LeakyReLU(x) = a x + (1 - a) relu(x)`` the output is
        ``a (s sum_h w2_h wx_h + sum_h w2_h c_h) + (1 - a) sum_{h active at s} w2_h (s wx_h + c_h) + b2``;
        the active units are a prefix (wx_h > 0) or suffix (wx_h < 0) of the units sorted by kink,
        so prefix sums and a binary search give every output. Gradients with respect to all
        parameters are exact (the active set is locally constant)."""
        a = self.negative_slope
        wx = self.wx[0]
        c = z * self.wz[0] + self.bx + self.bz  # (H,)
        pos = wx >= 0
        safe = jnp.where(wx == 0, 1.0, wx)
        kink = jnp.where(wx == 0, jnp.where(c > 0, -jnp.inf, jnp.inf), -c / safe)
        order = jnp.argsort(kink)
        kink_sorted = jax.lax.stop_gradient(kink[order])
        slope = wx[:, None] * self.w2  # (H, 2)
        icept = c[:, None] * self.w2  # (H, 2)
        pos_c = pos[:, None]
        # One (H, 8) table [slope+, intercept+, slope-, intercept-] so that a single gather,
        # cumsum and lookup serve all four prefix sums.
        table = jnp.concatenate(
            [jnp.where(pos_c, slope, 0.0), jnp.where(pos_c, icept, 0.0),
             jnp.where(pos_c, 0.0, slope), jnp.where(pos_c, 0.0, icept)], axis=1
        )
        sums = jnp.concatenate([jnp.zeros((1, 8), table.dtype), jnp.cumsum(table[order], axis=0)])  # (H + 1, 8)
        idx = jnp.searchsorted(kink_sorted, jax.lax.stop_gradient(s))  # units with kink < s
        at = sums[idx]  # (n, 8)
        total = sums[-1:]
        act_slope = at[:, 0:2] + (total[:, 4:6] - at[:, 4:6])
        act_icept = at[:, 2:4] + (total[:, 6:8] - at[:, 6:8])
        lin = a * (s[:, None] * jnp.sum(slope, axis=0, keepdims=True) + jnp.sum(icept, axis=0, keepdims=True))
        out = lin + (1.0 - a) * (s[:, None] * act_slope + act_icept)
        return out + jnp.broadcast_to(self.b2, out.shape)

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
        """h and H at each sample (``(K, 2)``) and at its D neighbours (``(K, D, 2)``), averaged
        over the control functions built from each other sample j != k."""
        k = self.num_samples
        others = np.array([[j for j in range(k) if j != i] for i in range(k)])  # (K, K-1), static
        delta = 1.0 - 2.0 * b  # neighbour i of b_k differs by delta_k[i] in coordinate i
        gb = jnp.sum(grad_b * b, axis=-1)  # (K,) g_j . b_j
        g_o, f_o = grad_b[others], f_b[others]  # (K, K-1, D), (K, K-1)
        centre = jnp.einsum("kd,kmd->km", b, g_o) - gb[others]  # g_j . (b_k - b_j)
        nbrs = centre[..., None] + g_o * delta[:, None, :]  # (K, K-1, D)
        if self.net is None:
            ctrl_x = jnp.stack([centre + f_o, jnp.ones_like(centre)], axis=-1)
            ctrl_n = jnp.stack([nbrs + f_o[..., None], jnp.ones_like(nbrs)], axis=-1)
        else:
            ctrl_x = self.net.apply(centre[..., None], f_o)[..., 0, :]  # (K, K-1, 2)
            # (K, K-1, D, 2): D inputs share each z, so use the piecewise-linear evaluation
            ctrl_n = jax.vmap(jax.vmap(self.net.apply_sorted))(nbrs, f_o)
        return jnp.mean(ctrl_x, axis=1), jnp.mean(ctrl_n, axis=1)

    def combine(self, logits, b, f_b, grad_b) -> Float[Array, " D"]:
        d = b.shape[-1]
        theta = jax.nn.sigmoid(logits)
        s = b - theta[None, :]  # (K, D)
        delta = 1.0 - 2.0 * b
        w1 = jnp.where(b > 0.5, (1.0 - theta)[None, :], theta[None, :])  # q_i(flipped value)
        ctrl_x, ctrl_n = self._controls(b, f_b, grad_b)
        h_x, big_h_x = ctrl_x[:, 0], ctrl_x[:, 1]
        h_n, big_h_n = ctrl_n[..., 0], ctrl_n[..., 1]
        # (A h)(b_k) = (1/D) sum_i w_i (h(b_k^(i)) - h(b_k))
        a_h = jnp.sum(w1 * (h_n - h_x[:, None]), axis=-1) / d  # (K,)
        # (A [H (. - theta)])(b_k): neighbour i has (. - theta) = s_k + delta_i e_i
        whn = w1 * big_h_n
        a_hs = (s * (jnp.sum(whn, axis=-1) - big_h_x * jnp.sum(w1, axis=-1))[:, None] + whn * delta) / d
        vr = f_b + self.alpha * a_h
        adv = f_b - leave_one_out_mean(vr)
        return jnp.mean(adv[:, None] * s + self.beta * a_hs, axis=0)
