"""zoo._malloc: with ``ZOO_MALLOC=1`` glibc's allocator is set at import and a program's large temporary buffer is
reused from one execution to the next instead of being faulted in afresh; by default glibc's defaults stay (and the
faults)."""

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
