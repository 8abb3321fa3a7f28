"""Hand-written kernels: each forward beside its backward, one pair per file."""
from ._jit import backend, backend_info, numba_available, set_backend, use_backend

__all__ = ["backend", "backend_info", "numba_available", "set_backend", "use_backend"]
