"""The estimator interface: unbiased estimates of grad_logits E_{z ~ Bernoulli(sigmoid(logits))}[f(z)]."""

from __future__ import annotations

import abc
from collections.abc import Callable
from typing import Any, ClassVar, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray, PyTree


#: A function of one binary vector (given as floats in {0, 1}) returning a scalar. Estimators
#: that use gradient information also evaluate ``jax.grad(f)`` at binary points, treating f
#: as a differentiable function of a relaxed z (e.g. a decoder MLP).
ObjectiveFn = Callable[[Float[Array, " D"]], Float[Array, ""]]


class Estimate(NamedTuple):
    """One gradient estimate and the samples it used.

    - `grad`: the estimate of d/d logits E[f(z)], shape ``(D,)``. It is differentiable with
      respect to the estimator's own learned parameters (for variance minimisation) and
      constant with respect to `f`'s parameters and the logits.
    - `samples`: the ``(K, D)`` points where f was evaluated (each marginally ~ q).
    - `values`: ``f(samples)``, shape ``(K,)``, differentiable through `f`'s closure (so a
      decoder can be trained on them).
    """

    grad: Float[Array, " D"]
    samples: Float[Array, "K D"]
    values: Float[Array, " K"]


class AbstractEstimator(eqx.Module):
    """An unbiased estimator of ``grad_logits E_{z ~ Bernoulli(sigmoid(logits))}[f(z)]``
    for factorised Bernoulli z, using ``num_samples`` evaluations of f.

    Every estimator works in two steps around the evaluations of f: `draw` the K points where f
    is evaluated, then `combine` them with their values (and, if `uses_gradient`, the gradients
    ``df/db`` at them) into the estimate. `estimate` does both with f in between; a caller that
    evaluates f itself (e.g. a VAE that gets ``df/db`` and its decoder gradient from one backward
    pass) calls `draw_batch` and `combine_batch`.

    Single-example: `logits` has shape ``(D,)``; use `jax.vmap` for batches. Learned
    auxiliary parameters (baselines, control variate weights, control networks) are the
    module's inexact arrays; train them by minimising ``mean(grad**2)`` (`variance_loss`).
    """

    num_samples: eqx.AbstractVar[int]
    uses_gradient: ClassVar[bool] = False  # whether f's gradient at the samples is needed

    @abc.abstractmethod
    def draw(self, logits: Float[Array, " D"], *, key: PRNGKeyArray) -> Float[Array, "K D"]:
        """The ``num_samples`` binary points (as floats) at which f is evaluated."""

    @abc.abstractmethod
    def combine(
        self,
        logits: Float[Array, " D"],
        b: Float[Array, "K D"],
        f_b: Float[Array, " K"],
        grad_b: Float[Array, "K D"] | None,
    ) -> Float[Array, " D"]:
        """The estimate from the drawn points `b`, their f values and (if `uses_gradient`) the
        gradients of f there (all constants here); it also reproduces the official code from
        the same inputs."""

    def estimate(self, f: ObjectiveFn, logits: Float[Array, " D"], *, key: PRNGKeyArray) -> Estimate:
        """Draw samples, evaluate f and return an `Estimate`."""
        b = self.draw(jax.lax.stop_gradient(logits), key=key)
        f_b, grad_b = self._evaluate(f, lambda g: jax.vmap(g)(b))
        grad = self.combine(jax.lax.stop_gradient(logits), b, jax.lax.stop_gradient(f_b), grad_b)
        return Estimate(grad=grad, samples=b, values=f_b)

    def _evaluate(self, f: Callable[..., Any], over: Callable[[Callable[..., Any]], Any]) -> tuple[Array, Array | None]:
        """f's values at the drawn points and, if `uses_gradient`, its gradients there (constants):
        `over` maps a per-point function over the points (``vmap`` for one row of logits)."""
        if not self.uses_gradient:
            return over(f), None
        f_b, grad_b = over(jax.value_and_grad(f))
        return f_b, jax.lax.stop_gradient(grad_b)

    def draw_batch(self, logits: Float[Array, "n D"], *, key: PRNGKeyArray) -> Float[Array, "n K D"]:
        """`draw` for every row of `logits` with keys ``split(key, n)``."""
        keys = jax.random.split(key, logits.shape[0])
        return jax.vmap(lambda lg, k: self.draw(lg, key=k))(logits, keys)

    def combine_batch(
        self,
        logits: Float[Array, "n D"],
        b: Float[Array, "n K D"],
        f_b: Float[Array, "n K"],
        grad_b: Float[Array, "n K D"] | None,
        *,
        chunk: int | None = None,
    ) -> Float[Array, "n D"]:
        """`combine` for every row; `chunk` bounds how many rows are combined at once."""
        inputs = (logits, b, f_b, grad_b)
        if chunk is None or chunk >= logits.shape[0]:
            return jax.vmap(self.combine)(*inputs)
        return jax.lax.map(lambda a: self.combine(*a), inputs, batch_size=chunk)

    def estimate_batch(
        self,
        f: Callable[..., Float[Array, ""]],
        logits: Float[Array, "n D"],
        args: PyTree = (),
        *,
        key: PRNGKeyArray,
        chunk: int | None = None,
    ) -> Estimate:
        """One estimate per row of `logits` for ``f(z, *args_n)`` (args: a tuple of arrays with a
        leading axis n), with fields batched along n. The keys are ``split(key, n)``, so this
        equals ``vmap(estimate)``; `chunk` bounds how many rows the combination step handles at
        once."""
        args = tuple(args)
        b = self.draw_batch(jax.lax.stop_gradient(logits), key=key)
        in_axes = (0,) + (None,) * len(args)
        f_b, grad_b = self._evaluate(f, lambda g: jax.vmap(jax.vmap(g, in_axes=in_axes))(b, *args))
        grad = self.combine_batch(
            jax.lax.stop_gradient(logits), b, jax.lax.stop_gradient(f_b), grad_b, chunk=chunk
        )
        return Estimate(grad=grad, samples=b, values=f_b)

    def __call__(self, f: ObjectiveFn, logits: Float[Array, " D"], *, key: PRNGKeyArray) -> Float[Array, " D"]:
        """The gradient estimate alone."""
        return self.estimate(f, logits, key=key).grad

    @property
    def num_evaluations(self) -> int:
        """How many times one estimate evaluates f."""
        return self.num_samples


class AbstractIIDEstimator(AbstractEstimator):
    """Estimators built from K i.i.d. samples ``b_k = 1[u_k > 1 - theta]``, their values
    ``f(b_k)`` and (if `uses_gradient`) the gradients ``df/db`` at ``b_k``: subclasses
    implement `combine`."""

    def draw(self, logits: Float[Array, " D"], *, key: PRNGKeyArray) -> Float[Array, "K D"]:
        return sample_bernoulli(logits, self.num_samples, key=key)


def sample_bernoulli(logits: Float[Array, " D"], num: int, *, key: PRNGKeyArray) -> Float[Array, "K D"]:
    """``num`` i.i.d. samples ``1[u > 1 - sigmoid(logits)]`` as floats, as the official code draws them."""
    theta = jax.nn.sigmoid(logits)
    u = jax.random.uniform(key, (num,) + logits.shape, logits.dtype)
    return (u > (1.0 - theta)[None, :]).astype(logits.dtype)


def leave_one_out_mean(x: Float[Array, "K ..."]) -> Float[Array, "K ..."]:
    """``(sum_j x_j - x_k) / (K - 1)`` for each k."""
    k = x.shape[0]
    return (jnp.sum(x, axis=0, keepdims=True) - x) / (k - 1)


def variance_loss(grad: Float[Array, ...]) -> Float[Array, ""]:
    """``mean(grad**2)``: the official code's objective for learned control variates (its
    minimiser is the variance minimiser because the estimate's mean does not depend on them)."""
    return jnp.mean(jnp.square(grad))


def check_num_samples(name: str, k: int, minimum: int) -> None:
    from .._errors import ConfigError

    if not isinstance(k, int) or k < minimum:
        raise ConfigError(f"{name} needs num_samples >= {minimum} (an int), got {k!r}")
