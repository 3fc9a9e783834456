"""zoo._malloc: with ``ZOO_MALLOC=1`` (`zoo train`'s default) glibc's allocator is set at import and a
program's large temporary buffer is reused from one execution to the next instead of being faulted in afresh; after
`settle` the heap holds one such buffer, not two; a library import keeps glibc's defaults (and the faults)."""

import os
import subprocess
import sys

import pytest


pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's allocator: Linux only")

# A program whose 128 MiB temporary (the product, read by the reduction) is allocated on every execution; the page
# faults of six executions after ten others, printed by a fresh process (the setting acts before JAX's threads
# first allocate).
CHILD = """
import resource, zoo, jax, jax.numpy as jnp
f = jax.jit(lambda a, b: jnp.sum(jnp.sin(a @ b), axis=0))
a, b = jnp.ones((4096, 16)), jnp.ones((16, 8192))
for _ in range(10):  # the heap settles (a freed block split by later small allocations is not reused)
    f(a, b).block_until_ready()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(6):
    f(a, b).block_until_ready()
print(zoo._malloc.applied(), resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def _faults(setting: str) -> tuple[str, int]:
    env = dict(os.environ, ZOO_MALLOC=setting, JAX_PLATFORMS="cpu")
    out = subprocess.run([sys.executable, "-c", CHILD], env=env, capture_output=True, text=True, check=True)
    applied, faults = out.stdout.split()
    return applied, int(faults)


def test_a_large_temporary_is_reused_not_faulted_in_again():
    pages = 128 * 2**20 // os.sysconf("SC_PAGE_SIZE")  # one execution's temporary
    applied, faults = _faults("1")
    assert applied == "True" and faults < 2.5 * pages  # six executions: the heap grows twice at most
    applied, faults = _faults("")  # the default: glibc's own settings
    assert applied == "False" and faults > 5 * pages  # six executions: each faults its temporary in


def test_an_unknown_setting_is_named_and_changes_nothing():
    env = dict(os.environ, ZOO_MALLOC="yes", JAX_PLATFORMS="cpu")
    out = subprocess.run([sys.executable, "-c", "import zoo; print(zoo._malloc.applied())"], env=env,
                         capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False" and "ZOO_MALLOC='yes' is not one of 1, on, 0, off" in out.stderr


# `settle` after two executions of the same program: the freed temporary (resident, kept for reuse) goes back to the
# system, and the next execution is served again (whether the heap then keeps one block or strands more depends on
# the order in which threads allocate: cards/ncsn-bench.md, "Stop 25", measures it on NCSN's steps).
SETTLED = """
import jax, jax.numpy as jnp, zoo
def rss():
    return next(int(ln.split()[1]) for ln in open("/proc/self/status") if ln.startswith("VmRSS:")) * 1024
f = jax.jit(lambda a, b: jnp.sum(jnp.sin(a @ b), axis=0))
a, b = jnp.ones((4096, 16)), jnp.ones((16, 8192))
first = f(a, b)
f(a, b).block_until_ready()
before = rss()
trimmed = zoo._malloc.settle()
after = rss()
ok = bool(jnp.allclose(f(a, b), first))
print(trimmed, before - after, ok, jax.config.read("jax_cpu_enable_async_dispatch"))
"""


def test_settle_returns_the_freed_temporary():
    env = dict(os.environ, ZOO_MALLOC="1", JAX_PLATFORMS="cpu")
    out = subprocess.run([sys.executable, "-c", SETTLED], env=env, capture_output=True, text=True, check=True)
    trimmed, released, ok, async_dispatch = out.stdout.split()
    assert trimmed == "True" and ok == "True"
    assert int(released) > 0.9 * 128 * 2**20  # the 128 MiB temporary, kept by the heap until then
    assert async_dispatch == "False"  # executions on the calling thread: the scratch is free when a call returns


def test_settle_is_a_no_op_without_the_setting():
    env = dict(os.environ, ZOO_MALLOC="0", JAX_PLATFORMS="cpu")
    code = ("import jax, zoo; print(zoo._malloc.applied(), zoo._malloc.settle(), "
            "jax.config.read('jax_cpu_enable_async_dispatch'))")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False", "True"]  # JAX's defaults untouched


@pytest.mark.parametrize(("setting", "applied"), [("", "True"), ("0", "False"), ("off", "False")])
def test_zoo_train_sets_it_by_default(setting, applied):
    """The console script (``bin/zoo``) imports zoo with ``sys.argv`` naming it and its command: on for ``train``
    unless ``ZOO_MALLOC=0``; the other commands and any other program keep glibc's defaults unless ``ZOO_MALLOC=1``."""
    env = dict(os.environ, ZOO_MALLOC=setting, JAX_PLATFORMS="cpu")
    code = "import sys; sys.argv[:] = {!r}; import zoo; print(zoo._malloc.applied())"
    cases = ((["/venv/bin/zoo", "train", "ncsn/mnist"], applied), (["/venv/bin/zoo", "sample", "ncsn-mnist"], "False"),
             (["train.py", "train"], "False"), (["/venv/bin/zoo"], "False"))
    for argv, expected in cases:
        out = subprocess.run([sys.executable, "-c", code.format(argv)], env=env, capture_output=True, text=True,
                             check=True)
        assert out.stdout.strip() == expected, (argv, setting)


# zoo's loops settle after their first step where the setting is on: batch_map (which then collects the first batch
# before dispatching the second) gives the same rows.
LOOPS = """
import numpy as np, jax, jax.numpy as jnp, zoo
calls = []
settle = zoo._malloc.settle
zoo._malloc.settle = lambda: calls.append(1) or settle()
x = np.arange(70, dtype=np.float32).reshape(35, 2)
out = zoo.batch_map(jax.vmap(lambda r: jnp.sin(r) * 2), x, batch_size=8)
print(zoo._malloc.applied(), len(calls), bool(np.allclose(out, np.sin(x) * 2)), out.shape)
"""


@pytest.mark.parametrize(("setting", "expected"), [("1", "True 1 True (35, 2)"), ("0", "False 0 True (35, 2)")])
def test_batch_map_settles_after_its_first_batch(setting, expected):
    env = dict(os.environ, ZOO_MALLOC=setting, JAX_PLATFORMS="cpu")
    out = subprocess.run([sys.executable, "-c", LOOPS], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == expected
