"""Network layers shared by the families.

`Conv2d` / `conv2d`: a 2-D convolution that stays on a fast path inside `lax.scan` loops, gradients
included: oneDNN's or XLA's kernels per shape on x86 CPUs (`zoo._onednn`), elsewhere XLA's canonical
form with a custom JVP (see `zoo/_conv.py`); `Conv2d.hwc` takes channels-last examples.
"""

from .._conv import Conv2d as Conv2d, conv2d as conv2d
