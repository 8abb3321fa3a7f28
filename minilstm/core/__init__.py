"""Hand-written kernels: each forward beside its backward, one pair per file.

Every function here validates its arguments, allocates its outputs and calls a kernel written
once in NumPy that runs either interpreted (backend "numpy") or compiled by Numba (backend
"numba"); see ``_jit.py``. Backward functions add parameter gradients into buffers the caller
owns and return input gradients.
"""
from ._jit import backend, backend_info, numba_available, set_backend, use_backend
from .activation import relu_backward, relu_forward
from .dropout import dropout_backward, dropout_forward, dropout_mask
from .embedding import embedding_backward, embedding_forward
from .linear import linear_backward, linear_forward
from .loss import IGNORE_INDEX, cross_entropy_per_token, softmax_cross_entropy
from .lstm import (GATE_ORDER, LSTMCache, lstm_backward, lstm_forward, lstm_recurrence_backward,
                   lstm_recurrence_forward, reorder_gates)
from .team import Team, TeamAborted, TeamMember
from .norm import batch_norm_backward, batch_norm_forward, layer_norm_backward, layer_norm_forward
from .optim import (adam_update, clip_grad_norm, clip_grad_value, grad_norm, rmsprop_update,
                    sgd_update)

__all__ = [
    "backend", "backend_info", "numba_available", "set_backend", "use_backend",
    "relu_backward", "relu_forward",
    "dropout_backward", "dropout_forward", "dropout_mask",
    "embedding_backward", "embedding_forward",
    "linear_backward", "linear_forward",
    "IGNORE_INDEX", "cross_entropy_per_token", "softmax_cross_entropy",
    "GATE_ORDER", "LSTMCache", "lstm_backward", "lstm_forward", "lstm_recurrence_backward",
    "lstm_recurrence_forward", "reorder_gates",
    "Team", "TeamAborted", "TeamMember",
    "batch_norm_backward", "batch_norm_forward", "layer_norm_backward", "layer_norm_forward",
    "adam_update", "clip_grad_norm", "clip_grad_value", "grad_norm", "rmsprop_update",
    "sgd_update",
]
