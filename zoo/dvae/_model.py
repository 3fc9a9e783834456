"""The binary-latent VAE: Bernoulli(0.5) prior over D latents, Bernoulli decoder, and an encoder
trained with a discrete gradient estimator from `zoo.estimators`."""

from __future__ import annotations

import dataclasses
import math
from typing import ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, PRNGKeyArray, PyTree

from .._batch_map import batch_map
from .._errors import DataError
from .._model import AbstractImageModel, AbstractStatelessModel, model_for
from .._trainer import AbstractTrainer, GradientTrainer
from ..estimators import AbstractEstimator, Estimate, make_estimator, variance_loss
from ..samplers import AbstractSampler
from ._config import DVAEConfig
from ._networks import MLP


LOG2 = math.log(2.0)


@model_for(DVAEConfig)
class DVAE(AbstractImageModel, AbstractStatelessModel):
    """``q(b|x) = Bernoulli(sigmoid(encoder(x)))``, ``p(b) = Bernoulli(0.5)^D``,
    ``p(x|b) = Bernoulli(sigmoid(decoder(b)))``.

    `loss` is a surrogate whose value is the K-sample mean negative ELBO and whose gradient is:
    for the decoder, the gradient of that mean; for the encoder, the chosen estimator's
    estimate of ``d/d eta E_q[-ELBO]`` pushed back through ``eta = encoder(x)``; for the
    estimator's own parameters (control variates), the gradient of ``mean(estimate**2)`` on the
    same samples, as in the official RODEO code. All are batch means.
    """

    config: DVAEConfig = eqx.field(static=True)
    encoder: MLP
    decoder: MLP
    estimator: AbstractEstimator
    trainer: ClassVar[AbstractTrainer] = GradientTrainer()
    # The estimator's own parameters (control variates) at config.estimator_learning_rate (`learning_rates`).
    rate_groups: ClassVar[tuple[tuple[str, str], ...]] = (("estimator", "estimator_learning_rate"),)

    def __init__(self, config: DVAEConfig, *, key: PRNGKeyArray):
        k_enc, k_dec, k_est = jax.random.split(key, 3)
        self.config = config
        c = config
        if c.architecture == "linear":
            enc_sizes, dec_sizes = (c.data_dim, c.latent_dim), (c.latent_dim, c.data_dim)
        else:
            enc_sizes = (c.data_dim, c.hidden, c.hidden, c.latent_dim)
            dec_sizes = (c.latent_dim, c.hidden, c.hidden, c.data_dim)
        self.encoder = MLP(enc_sizes, negative_slope=c.negative_slope, key=k_enc)
        self.decoder = MLP(dec_sizes, negative_slope=c.negative_slope, key=k_dec)
        self.estimator = make_estimator(c.estimator, c.num_samples, key=k_est, control_width=c.control_width)

    # ----------------------------------------------------------------- densities
    def log_likelihood(self, x: Float[Array, " P"], b: Float[Array, " D"]) -> Float[Array, ""]:
        """``log p(x | b)`` (Bernoulli pixels; `b` may be relaxed for gradients)."""
        logits = self.decoder(b)
        return jnp.sum(x * logits - jax.nn.softplus(logits))

    def log_prior(self, b: Float[Array, " D"]) -> Float[Array, ""]:
        del b
        return jnp.asarray(-self.config.latent_dim * LOG2, jnp.float32)

    def log_weight(self, x: Float[Array, " P"], b: Float[Array, " D"], eta: Float[Array, " D"]) -> Float[Array, ""]:
        """``log p(x, b) - log q(b | x)``: the single-sample ELBO at `b`."""
        log_q = jnp.sum(b * eta - jax.nn.softplus(eta))
        return self.log_likelihood(x, b) + self.log_prior(b) - log_q

    def negative_elbo_fn(self, x: Float[Array, " P"], eta: Float[Array, " D"]):
        """f(b) = -ELBO(x, b), with the encoder's logits held constant (its gradient comes
        from the estimator)."""
        eta = jax.lax.stop_gradient(eta)
        return lambda b: -self.log_weight(x, b, eta)

    def encode(self, x: Float[Array, " P"]) -> Float[Array, " D"]:
        return self.encoder(x)

    # ----------------------------------------------------------------- training
    def _flatten(self, batch: Array) -> Float[Array, "n P"]:
        x = jnp.asarray(batch, jnp.float32)
        return x.reshape(x.shape[0], -1)

    def estimate(self, x: Float[Array, "n P"], *, key: PRNGKeyArray) -> tuple[Float[Array, "n D"], Estimate]:
        """Encoder logits and one estimator call per data point."""
        eta, est, _ = self._estimate(x, key=key, decoder_grad=False)
        return eta, est

    def _estimate(self, x: Float[Array, "n P"], *, key: PRNGKeyArray, decoder_grad: bool):
        """`estimate`, evaluating f = -ELBO itself: one backward pass through the decoder gives
        both ``df/db`` at every sample (if the estimator uses it) and, with ``decoder_grad``, the
        decoder's gradient of ``sum f`` (the official code also takes both from one tape). The
        values are constants of the decoder here; `loss` adds the decoder gradient explicitly."""
        eta = jax.vmap(self.encoder)(x)
        eta_c = jax.lax.stop_gradient(eta)
        est = self.estimator
        b = est.draw_batch(eta_c, key=key)  # (n, K, D)

        def values(decoder, bb):  # f(b) = -ELBO(x, b) with the given decoder
            model = eqx.tree_at(lambda m: m.decoder, self, decoder)
            one = lambda bi, xi, ei: -model.log_weight(xi, bi, ei)  # noqa: E731
            return jax.vmap(jax.vmap(one, in_axes=(0, None, None)))(bb, x, eta_c)

        decoder = jax.lax.stop_gradient(self.decoder)
        g_dec = grad_b = None
        if est.uses_gradient:
            f_b, vjp = jax.vjp(values, decoder, b)
            g_dec, grad_b = vjp(jnp.ones_like(f_b))
        elif decoder_grad:
            f_b, vjp = jax.vjp(lambda d: values(d, b), decoder)
            (g_dec,) = vjp(jnp.ones_like(f_b))
        else:
            f_b = values(decoder, b)
        grad = est.combine_batch(eta_c, b, f_b, grad_b, chunk=self.config.combine_chunk)
        return eta, Estimate(grad=grad, samples=b, values=f_b), (g_dec if decoder_grad else None)

    def binarize_batch(self, batch: Array, *, key: PRNGKeyArray) -> Float[Array, "n P"]:
        """A training batch as flat pixels: with `dynamic_binarization`, fresh Bernoulli(grey value)
        pixels drawn with `key` (a new key every step, so every epoch sees new binary images, as in
        the papers); otherwise the (already binary) batch as it is."""
        x = self._flatten(batch)
        if self.config.dynamic_binarization:
            x = jax.random.bernoulli(key, x).astype(jnp.float32)
        return x

    def loss(self, batch: Array, state: None, *, key: PRNGKeyArray) -> tuple[Float[Array, ""], tuple[None, dict]]:
        k_bin, k_est = jax.random.split(key)
        x = self.binarize_batch(batch, key=k_bin)
        eta, est, g_dec = self._estimate(x, key=k_est, decoder_grad=True)
        neg_elbo = jnp.mean(est.values)
        # decoder: the gradient of mean(f) over the batch and the K samples
        scale = 1.0 / est.values.size
        dec_term = sum(
            jnp.sum(jax.lax.stop_gradient(g) * scale * p)
            for g, p in zip(jax.tree_util.tree_leaves(g_dec), jax.tree_util.tree_leaves(self.decoder))
        )
        g = est.grad
        encoder_term = jnp.mean(jnp.sum(jax.lax.stop_gradient(g) * eta, axis=-1))
        var = variance_loss(g)
        surrogate = dec_term + encoder_term + var
        loss = neg_elbo + (surrogate - jax.lax.stop_gradient(surrogate))
        return loss, (state, {"neg_elbo": neg_elbo, "grad_sq": jax.lax.stop_gradient(var)})

    # ----------------------------------------------------------------- sampling
    def default_sampler(self) -> None:
        return None  # ancestral sampling, no Markov chain

    def sample(
        self, n: int, *, sampler: AbstractSampler | None = None, key: PRNGKeyArray
    ) -> Float[Array, "n H W C"]:
        """Pixel probabilities ``sigmoid(decoder(b))`` for ``b ~ p(b) = Bernoulli(0.5)^D``, as images
        (ancestral sampling: `sampler` must be None)."""
        self.resolve_sampler(sampler)
        b = jax.random.bernoulli(key, 0.5, (n, self.config.latent_dim)).astype(jnp.float32)
        return jax.nn.sigmoid(jax.vmap(self.decoder)(b)).reshape((n,) + tuple(self.config.image_shape))

    def reconstruct(self, x: Array, *, key: PRNGKeyArray) -> Float[Array, "n H W C"]:
        """``sigmoid(decoder(b))`` with ``b ~ q(b | x)``, as images."""
        xf = self._flatten(x)
        eta = jax.vmap(self.encoder)(xf)
        b = jax.random.bernoulli(key, jax.nn.sigmoid(eta)).astype(jnp.float32)
        return jax.nn.sigmoid(jax.vmap(self.decoder)(b)).reshape(x.shape[:1] + tuple(self.config.image_shape))

    def with_estimator(self, name: str, num_samples: int | None = None, *, key: PRNGKeyArray) -> DVAE:
        """The same encoder and decoder with a fresh estimator (e.g. to compare estimators
        at fixed model parameters)."""
        config = dataclasses.replace(
            self.config, estimator=name, num_samples=num_samples if num_samples is not None else self.config.num_samples
        )
        new = DVAE(config, key=key)
        return eqx.tree_at(lambda m: (m.encoder, m.decoder), new, (self.encoder, self.decoder))

    # ----------------------------------------------------------------- evaluation
    def log_weights(self, x: Float[Array, " P"], num: int, *, key: PRNGKeyArray) -> Float[Array, " num"]:
        """``num`` importance log-weights ``log p(x, b_s) - log q(b_s | x)``, ``b_s ~ q``, decoded
        ``iw_chunk`` at a time."""
        chunk = min(self.config.iw_chunk, num)
        if num % chunk:
            raise DataError(f"num ({num}) must be a multiple of iw_chunk ({chunk})")
        eta = self.encoder(x)
        theta = jax.nn.sigmoid(eta)

        def one_chunk(k):
            b = jax.random.bernoulli(k, jnp.broadcast_to(theta, (chunk, theta.shape[0]))).astype(jnp.float32)
            return jax.vmap(lambda bi: self.log_weight(x, bi, eta))(b)

        return jax.lax.map(one_chunk, jax.random.split(key, num // chunk)).reshape(num)

    def bounds(
        self, x: Float[Array, "n P"], *, key: PRNGKeyArray, iw_samples: int, elbo_samples: int
    ) -> tuple[Float[Array, " n"], Float[Array, " n"]]:
        """Per example: the ELBO (mean of the first `elbo_samples` log-weights, an unbiased
        estimate) and the IWAE bound ``log mean_s exp(log w_s)`` with `iw_samples`."""
        keys = jax.random.split(key, x.shape[0])
        lw = jax.vmap(lambda xi, ki: self.log_weights(xi, iw_samples, key=ki))(x, keys)
        elbo = jnp.mean(lw[:, :elbo_samples], axis=1)
        iwae = jax.scipy.special.logsumexp(lw, axis=1) - math.log(iw_samples)
        return elbo, iwae

    def encoder_gradient_variance(
        self, x: Float[Array, "n P"], *, key: PRNGKeyArray, replicates: int
    ) -> dict[str, Float[Array, ""]]:
        """Variance of this model's estimator at the current parameters over `replicates` draws:
        ``encoder_grad_var``: the per-entry variance of the batch-mean encoder gradient, averaged
        over all encoder parameters (the official ``var/grad`` metric, without its EMA);
        ``eta_grad_var``: the per-logit variance of the estimate, averaged over data and latents."""
        eta, vjp = jax.vjp(lambda enc: jax.vmap(enc)(x), self.encoder)
        del eta
        n = x.shape[0]

        def one(k):
            _, est = self.estimate(x, key=k)
            g = jax.lax.stop_gradient(est.grad)
            (genc,) = vjp(g / n)
            flat = jnp.concatenate([leaf.ravel() for leaf in jax.tree_util.tree_leaves(genc)])
            return flat, g

        keys = jax.random.split(key, replicates)
        ref_flat, ref_g = one(keys[0])

        def body(carry, k):
            s1, s2, t1, t2 = carry
            flat, g = one(k)
            df, dg = flat - ref_flat, g - ref_g
            return (s1 + df, s2 + df**2, t1 + dg, t2 + dg**2), None

        zeros = (jnp.zeros_like(ref_flat), jnp.zeros_like(ref_flat), jnp.zeros_like(ref_g), jnp.zeros_like(ref_g))
        (s1, s2, t1, t2), _ = jax.lax.scan(body, zeros, keys)
        r = replicates
        var_enc = (s2 - s1**2 / r) / (r - 1)
        var_eta = (t2 - t1**2 / r) / (r - 1)
        return {"encoder_grad_var": jnp.mean(var_enc), "eta_grad_var": jnp.mean(var_eta)}

    def prepare(self, data: PyTree[np.ndarray], *, key: PRNGKeyArray) -> np.ndarray:
        """Held-out images as a flat (n, 784) float32 array of {0, 1}: binarized once with `key`
        when the data are grey and the model uses dynamic binarization."""
        x = np.asarray(data, dtype=np.float32).reshape(len(data), -1)
        if x.shape[1] != self.config.data_dim:
            raise DataError(f"expected {self.config.data_dim} pixels per example, got {x.shape[1]}")
        binary = bool(np.all((x == 0) | (x == 1)))
        if not binary:
            if not self.config.dynamic_binarization:
                raise DataError(
                    "the data are not binary and this model does not binarize; pass binarized data "
                    "(e.g. zoo.data.binarize(x, key=...))"
                )
            x = np.asarray(jax.random.bernoulli(key, jnp.asarray(x)), dtype=np.float32)
        return x

    def evaluate(
        self,
        data: PyTree[np.ndarray],
        *,
        key: PRNGKeyArray,
        iw_samples: int | None = None,
        variance_replicates: int | None = None,
        chunk: int = 50,
    ) -> dict[str, float]:
        """``elbo`` and ``iwae`` (log-likelihood lower bound with ``iw_samples``, default
        ``config.iw_samples``), averaged over `data` (nats per example); and the encoder-gradient
        variance of this model's estimator on ``config.variance_batch`` examples spread evenly over
        `data` (held-out sets are often sorted by class)."""
        c = self.config
        iw = iw_samples or c.iw_samples
        reps = variance_replicates or c.variance_replicates
        k_bin, k_iw, k_var = jax.random.split(key, 3)
        x = self.prepare(data, key=k_bin)
        n = x.shape[0]
        if n == 0:
            raise DataError("evaluate needs at least one example; got an empty data set")
        elbo_n = min(c.elbo_samples, iw)
        # `chunk` examples per jitted call (padded: one compilation); chunk i draws with fold_in(k_iw, i)
        bounds = eqx.Partial(self.bounds, iw_samples=iw, elbo_samples=elbo_n)
        elbos, iwaes = batch_map(bounds, x, batch_size=min(chunk, n), key=k_iw, progress="IWAE bounds")
        out = {
            "elbo": float(np.mean(elbos)),
            "iwae": float(np.mean(iwaes)),
            "num_examples": float(n),
            "iw_samples": float(iw),
        }
        if reps > 1:
            idx = np.linspace(0, n - 1, min(c.variance_batch, n)).round().astype(int)  # spread over the set
            xv = jnp.asarray(x[idx])
            var = eqx.filter_jit(lambda mdl, xb, k: mdl.encoder_gradient_variance(xb, key=k, replicates=reps))(
                self, xv, k_var
            )
            out.update({k: float(v) for k, v in var.items()})
        return out
