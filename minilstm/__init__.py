"""minilstm: LSTM language models from scratch — NumPy for the maths, Numba for the speed."""
from ._version import __version__
from .core import backend, backend_info, set_backend, use_backend

__all__ = ["__version__", "backend", "backend_info", "set_backend", "use_backend"]
