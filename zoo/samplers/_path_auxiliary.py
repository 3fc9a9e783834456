"""The path auxiliary proposal (Sun et al., 2022, "Path auxiliary proposal for MCMC in discrete
space", ICLR), for binary ``(D,)`` and one-hot ``(D, K)`` states.

A proposal walks a path ``x = x^0 -> x^1 -> ... -> x^L = y`` of ``L`` single changes. Change
``l`` is drawn from the locally balanced proposal of the first-order approximation of ``f`` at
the START of the path, evaluated at the path's current point ``u = x^{l-1}``:

    q_x(i, j | u) = softmax over (i, j), j != u_i, of (G_ij - G_{i, u_i}) / temperature,

with ``G = grad f(x)`` (for a binary state the flips ``(1 - 2 u_i) g_i / temperature``). A
later change may undo or redo an earlier one. The path is an auxiliary variable: walked
backwards from ``y`` it returns to ``x``, so ``(x, path) -> (y, reversed path)`` is an involution
and, with the reverse changes drawn from the approximation at ``y`` (``G' = grad f(y)``),

    log alpha = f(y) - f(x) + sum_l log q_y(i_l, u^{l-1}_{i_l} | x^l) - sum_l log q_x(i_l, j_l | x^{l-1})

is an exact Metropolis-Hastings correction (the official code's ``PathAuxiliaryFastSampler``).
``L = 1`` is Gibbs-with-Gradients with one change (`GWG`, `CategoricalGWG`): same proposal,
same acceptance. With ``random_length`` the length is drawn each step uniformly from
``1..2 path_length - 1`` (the paper code's choice), independently of the state, so the
correction stays exact. A step costs what a GWG step costs (one gradient, at ``y``) plus
``2 (L - 1)`` softmax normalisations over the ``D (K - 1)`` changes; the target's cache moves by
the net change only (the positions whose final value differs from the start), through its
``flip`` / ``change``.

With ``K = 2`` and a fixed even ``L`` every proposal changes an even number of positions, so the
parity of the number of ones never changes (the chain is reducible); `init` refuses it.
"""

from __future__ import annotations

from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Bool, Float, Int, PRNGKeyArray, PyTree

from ._base import SAMPLERS, AbstractSampler
from ._categorical import as_categorical_target
from ._gwg import as_binary_target, first_occurrence, sample_indices
from ._target import num_values, state_values


class PathAuxiliaryState(eqx.Module):
    """The target's cache at the current point, ``grad f`` there (shaped like the state) and the
    normalised log-probabilities of the first change of a path from there (`change_log_probs`)."""

    cache: PyTree
    grad: Array
    log_q: Float[Array, " C"]


class Path(eqx.Module):
    """A walked path of ``n`` (``= max_length()``) steps, of which the first ``sum(active)`` are on it."""

    changes: Int[Array, " n"]  # flattened changes (binary: positions; one-hot: i * K + j)
    pos: Int[Array, " n"]  # their positions
    new: Int[Array, " n"]  # the values they set
    back: Int[Array, " n"]  # the flattened changes that undo them
    active: Bool[Array, " n"]
    final: Int[Array, " D"]  # the values at the end of the path
    log_prob: Float[Array, ""]  # log q_x(path)


def change_log_probs(v: Int[Array, " D"], table: Array) -> Float[Array, " C"]:
    """Normalised ``log q(. | u)`` over the flattened changes at the path point with values `v`,
    from ``table = grad f(x) / temperature``: ``(D,)`` flips for a binary table ``(D,)``, ``(D * K,)``
    changes ``i * K + j`` (``-inf`` at the current values) for a one-hot table ``(D, K)``."""
    if table.ndim == 1:
        return jax.nn.log_softmax(jnp.where(v == 0, table, -table))
    cur = jnp.take_along_axis(table, v[:, None], axis=1)
    logits = jnp.where(jnp.arange(table.shape[1])[None, :] == v[:, None], -jnp.inf, table - cur)
    return jax.nn.log_softmax(logits.reshape(-1))


def decode_change(flat: Int[Array, ""], v: Int[Array, " D"], k: int) -> tuple[Int[Array, ""], Int[Array, ""]]:
    """``(position, new value)`` of a flattened change at values `v`: ``k = 0`` for a binary state
    (the change is the position, a flip), else ``K``."""
    if k == 0:
        return flat, 1 - v[flat]
    return flat // k, flat % k


def _unroll(n: int) -> int:
    # straight-line code for short paths: XLA:CPU pays a fixed cost per loop iteration that
    # exceeds a path step's work on small states
    return n if n <= 16 else 1


@SAMPLERS.register("path_auxiliary")
class PathAuxiliary(AbstractSampler[PathAuxiliaryState]):
    """The path auxiliary sampler for one chain, binary or one-hot.

    - `path_length`: ``L``, single changes per proposal (the mean length with `random_length`).
    - `random_length`: draw ``L`` uniformly from ``1..2 path_length - 1`` each step.
    - `temperature`: ``q = softmax(d / temperature)``; 2 is the locally balanced ``sqrt`` weighting.
    """

    path_length: int = 1
    random_length: bool = False
    temperature: float = 2.0

    def __check_init__(self):
        if self.path_length < 1:
            raise ValueError(f"path_length must be >= 1, got {self.path_length}")
        if not self.temperature > 0:
            raise ValueError(f"temperature must be > 0, got {self.temperature}")

    def max_length(self) -> int:
        """The most changes one path can hold (the scan length)."""
        return 2 * self.path_length - 1 if self.random_length else self.path_length

    def _target(self, target: Any, x: Array) -> Any:
        k = num_values(x)  # a clear error for a wrong shape
        if k == 2 and not self.random_length and self.path_length % 2 == 0:
            raise ValueError(
                f"path_length={self.path_length} (even, fixed) changes an even number of positions of a two-valued "
                "state per proposal, so the parity of the number of ones never changes and the chain cannot mix: "
                "use an odd path_length or random_length=True"
            )
        return as_binary_target(target) if x.ndim == 1 else as_categorical_target(target)

    def _table(self, grad: Array) -> Array:
        return grad / self.temperature

    def init(self, target: Any, x: Array) -> PathAuxiliaryState:
        t = self._target(target, x)
        cache = t.init(x)
        grad = t.grad(x, cache)
        return PathAuxiliaryState(cache=cache, grad=grad, log_q=change_log_probs(state_values(x), self._table(grad)))

    def walk(
        self, x: Array, state: PathAuxiliaryState, active: Bool[Array, " n"], changes=None, uniforms=None
    ) -> Path:
        """Walk a path from `x`, its steps ``active`` (a prefix): with `uniforms` ``(n,)`` draw the
        changes (inverse CDF), else follow `changes` ``(n,)``."""
        k = 0 if x.ndim == 1 else x.shape[1]
        table = self._table(state.grad)
        n = active.shape[0]
        given = jnp.zeros((n,), jnp.int32) if changes is None else changes
        us = jnp.zeros((n,), table.dtype) if uniforms is None else uniforms

        def one(v, log_q, flat, u, act):
            if uniforms is not None:
                flat = sample_indices(log_q, u[None])[0]
            i, j = decode_change(flat, v, k)
            old = v[i]
            back = i if k == 0 else i * k + old
            return v.at[i].set(jnp.where(act, j, old)), jnp.where(act, log_q[flat], 0.0), (flat, i, j, back)

        v, lp, out = one(state_values(x), state.log_q, given[0], us[0], active[0])  # x's log_q is in the state
        out = jax.tree.map(lambda a: a[None], out)
        if n > 1:

            def body(carry, inp):
                v, lp = carry
                v, dlp, o = one(v, change_log_probs(v, table), *inp)
                return (v, lp + dlp), o

            (v, lp), rest = jax.lax.scan(body, (v, lp), (given[1:], us[1:], active[1:]), unroll=_unroll(n - 1))
            out = jax.tree.map(lambda a, b: jnp.concatenate([a, b]), out, rest)
        flat, pos, new, back = out
        return Path(changes=flat, pos=pos, new=new, back=back, active=active, final=v, log_prob=lp)

    def path_log_prob(
        self, x: Array, state: PathAuxiliaryState, changes: Int[Array, " n"], active: Bool[Array, " n"]
    ) -> Float[Array, ""]:
        """``log q_x(path)`` of the flattened `changes` from `x` (steps with ``active`` False are not on it)."""
        return self.walk(x, state, active, changes).log_prob

    def reverse_log_prob(
        self, x: Array, path: Path, table_y: Array, log_q_y: Float[Array, " C"]
    ) -> Float[Array, ""]:
        """``log q_y(reversed path)``: each change undone from the point it reached, under the
        approximation at ``y`` (``table_y = grad f(y) / temperature``; ``log_q_y``: the change
        log-probabilities at ``y`` itself, where the last change is undone)."""
        n = path.active.shape[0]
        lp = log_q_y[path.back[jnp.sum(path.active) - 1]]
        if n > 1:

            def body(carry, inp):
                v, lp = carry
                i, j, back, act, act_next = inp
                v = v.at[i].set(jnp.where(act, j, v[i]))
                return (v, lp + jnp.where(act & act_next, change_log_probs(v, table_y)[back], 0.0)), None

            inputs = (path.pos[:-1], path.new[:-1], path.back[:-1], path.active[:-1], path.active[1:])
            (_, lp), _ = jax.lax.scan(body, (state_values(x), lp), inputs, unroll=_unroll(n - 1))
        return lp

    def _propose(self, target: Any, x: Array, state: PathAuxiliaryState, path: Path):
        t = self._target(target, x)
        changed = path.final != state_values(x)
        moved = jnp.any(changed)
        keep = path.active & changed[path.pos]
        idx = jnp.where(keep, path.pos, path.pos[jnp.argmax(keep)])  # the net changes, padded with repeats
        first = first_occurrence(idx) & moved
        if x.ndim == 1:
            x_new, cache_new, grad_new = t.flip_and_grad(x, state.cache, idx, first)
        else:
            x_new, cache_new, grad_new = t.change_and_grad(x, state.cache, idx, path.final[idx], first)
        x_new, cache_new, grad_new = jax.tree.map(
            lambda a, b: jnp.where(moved, a, b), (x_new, cache_new, grad_new), (x, state.cache, state.grad)
        )
        table_new = self._table(grad_new)
        log_q_new = change_log_probs(path.final, table_new)
        log_rev = self.reverse_log_prob(x, path, table_new, log_q_new)
        log_alpha = t.log_prob(x_new, cache_new) - t.log_prob(x, state.cache) + log_rev - path.log_prob
        # a change of probability zero (float round-off at the ends of the inverse CDF) is rejected
        log_alpha = jnp.where(jnp.isfinite(path.log_prob), log_alpha, -jnp.inf)
        return log_alpha, x_new, PathAuxiliaryState(cache=cache_new, grad=grad_new, log_q=log_q_new)

    def propose(
        self, target: Any, x: Array, state: PathAuxiliaryState, changes: Int[Array, " n"], active: Bool[Array, " n"]
    ) -> tuple[Float[Array, ""], Array, PathAuxiliaryState]:
        """For a given path (flattened `changes`, steps with ``active`` False skipped): ``(log alpha,
        y, state at y)`` (the MH log ratio, unclipped)."""
        return self._propose(target, x, state, self.walk(x, state, active, changes))

    def step(
        self, target: Any, x: Array, state: PathAuxiliaryState, *, key: PRNGKeyArray
    ) -> tuple[Array, PathAuxiliaryState, dict[str, Array]]:
        k_len, k_path, k_acc = jax.random.split(key, 3)
        n = self.max_length()
        if self.random_length:
            length = jax.random.randint(k_len, (), 1, n + 1)
        else:
            length = n
        active = jnp.arange(n) < length
        uniforms = jax.random.uniform(k_path, (n,), dtype=state.grad.dtype)
        path = self.walk(x, state, active, uniforms=uniforms)
        log_alpha, x_new, state_new = self._propose(target, x, state, path)
        log_alpha = jnp.minimum(log_alpha, 0.0)
        accept = jnp.log(jax.random.uniform(k_acc, dtype=log_alpha.dtype)) < log_alpha
        x_out, state_out = jax.tree.map(lambda a, b: jnp.where(accept, a, b), (x_new, state_new), (x, state))
        hops = jnp.where(accept, jnp.sum(path.final != state_values(x)), 0).astype(log_alpha.dtype)
        return x_out, state_out, {"accept_prob": jnp.exp(log_alpha), "hops": hops}
