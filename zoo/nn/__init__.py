"""Network layers shared by the families.

`Conv2d` / `conv2d`: a 2-D convolution in XLA:CPU's canonical form with a custom JVP, so it
stays on the fast path inside `lax.scan` loops, gradients included (see `zoo/_conv.py`);
`Conv2d.hwc` takes channels-last examples.
"""

from .._conv import Conv2d as Conv2d, conv2d as conv2d
