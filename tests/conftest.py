"""Suite-wide settings applied before any test module imports numpy.

One BLAS (and C-kernel) thread per process: under pytest-xdist every core already runs a worker, and a
second BLAS thread per worker made single-token evals up to 10x slower on 2 cores.
"""

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("BITNET_THREADS", "1")  # the C kernels' pool, likewise
