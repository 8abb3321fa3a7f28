"""minilstm: LSTM language models from scratch — NumPy for the maths, Numba for the speed.

    from minilstm import CharVocab, LanguageModel, ModelConfig, Sampler, SampleConfig, TrainConfig, Trainer
"""
from ._malloc import keep_freed_memory, malloc_status
from ._version import __version__
from .core import backend, backend_info, set_backend, use_backend
from .data import CharVocab, WordVocab, load_shakespeare, split_ids
from .model import LanguageModel, ModelConfig
from .model_io import load_model, save_model
from .sample import SampleConfig, Sampler, sample_text
from .train import Trainer, train_step
from .train_config import TrainConfig

__all__ = ["__version__", "backend", "backend_info", "set_backend", "use_backend", "CharVocab", "WordVocab",
           "load_shakespeare", "split_ids", "LanguageModel", "ModelConfig", "load_model", "save_model",
           "SampleConfig", "Sampler", "sample_text", "Trainer", "train_step", "TrainConfig", "malloc_status"]

# Before any array is allocated: a training step reallocates megabytes of arrays every step,
# and glibc's defaults make each of them fresh pages to fault in (see _malloc.py).
keep_freed_memory()
