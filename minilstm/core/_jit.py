"""The one place that imports numba: backends, the ``kernel`` decorator and the JIT policy.

Every kernel in ``minilstm.core`` is written once, in the subset of NumPy that both CPython and
Numba accept. ``@kernel`` keeps that source as the *numpy* build and compiles it with Numba on
first use as the *numba* build. Which build runs is decided per call by the active backend:

    MINILSTM_DISABLE_JIT=1        -> "numpy" (numba is never imported)
    MINILSTM_BACKEND=numba|numpy  -> that backend (numba must be importable for "numba")
    otherwise                     -> "numba" when numba imports, else "numpy"

and from Python with ``set_backend(name)`` or ``with use_backend(name): ...``.

Why a wrapper object rather than plain ``numba.njit``: a jitted driver calls its helpers by
global name, and Numba freezes those names into the compiled code. To switch backends at run
time, the numba build of a kernel is compiled from a copy of the function whose globals map each
helper kernel to *its* numba build, while the numpy build keeps the original globals. The two
builds therefore share one source and cannot drift; ``tests/test_backends.py`` checks they agree.

A kernel may register a second, loop-based source for the numba build with
``@some_kernel.numba_variant`` where a benchmark shows explicit loops pay (fused elementwise
passes that would otherwise allocate temporaries). Each variant has a parity test.

JIT policy (set once, here): ``cache=True`` so compiled code is reused across processes;
``fastmath=False`` (no benchmark has shown a gain worth giving up IEEE semantics, and the
no-NaN/no-Inf flags would break the NaN checks the trainer relies on); ``error_model="numpy"``
so a division by zero gives inf/nan like NumPy instead of raising. No ``parallel=True``: the
BLAS thread pool already uses the cores in training, and a second pool competing for them made
the matrix products slower. Where kernels share work between threads (training's LSTM teams,
the sampler), the threads are Python threads, each running a compiled loop with the GIL
released (``nogil``), and they meet on shared counters (:func:`atomic_load`,
:func:`atomic_store`); see ``team.py``.

Where compiled code is cached: Numba invalidates a cached function when *its own* source file
changes, not when a helper it calls from another file does, so after an edit or an upgrade a
stale compiled driver could keep calling an old helper. The cache therefore lives in a
directory named after a hash of every kernel source file: ``$NUMBA_CACHE_DIR/minilstm-<hash>``
when NUMBA_CACHE_DIR is set, else ``$XDG_CACHE_HOME/minilstm/numba-<hash>`` (default
``~/.cache``). Any change to any kernel selects a fresh directory.
"""
from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import platform
import sys
import threading
import time
import types
from pathlib import Path

import numpy as np

BACKENDS = ("numba", "numpy")
JIT_OPTIONS = dict(cache=True, fastmath=False, error_model="numpy", nogil=True)

_numba = None          # the numba module, once imported
_dispatcher_lock = threading.RLock()   # re-entered: a kernel's dispatcher creates its helpers' first
_numba_error = None    # why numba could not be imported, for the error message


def _import_numba():
    """Import numba on demand; return the module or None (recording why)."""
    global _numba, _numba_error
    if _numba is None and _numba_error is None:
        try:
            import numba  # the one import of numba in the project
            _numba = numba
        except Exception as exc:  # ImportError, or a broken llvmlite install
            _numba_error = f"{type(exc).__name__}: {exc}"
    return _numba


def _backend_from_environment() -> str:
    if os.environ.get("MINILSTM_DISABLE_JIT", "").strip() not in ("", "0"):
        return "numpy"
    requested = os.environ.get("MINILSTM_BACKEND", "").strip().lower()
    if requested:
        if requested not in BACKENDS:
            raise ValueError(
                f"MINILSTM_BACKEND={requested!r} is not a backend; expected one of {BACKENDS}")
        if requested == "numba" and _import_numba() is None:
            raise ImportError(
                f"MINILSTM_BACKEND=numba but numba cannot be imported ({_numba_error}); "
                "install numba or set MINILSTM_BACKEND=numpy")
        return requested
    return "numba" if _import_numba() is not None else "numpy"


class _State:
    backend = _backend_from_environment()


def backend() -> str:
    """The active backend: ``"numba"`` (compiled) or ``"numpy"`` (same source, interpreted)."""
    return _State.backend


def numba_available() -> bool:
    """True when numba can be imported (and MINILSTM_DISABLE_JIT does not forbid it)."""
    if os.environ.get("MINILSTM_DISABLE_JIT", "").strip() not in ("", "0"):
        return False
    return _import_numba() is not None


def set_backend(name: str) -> str:
    """Select the backend for all later kernel calls; returns the previous one."""
    if name not in BACKENDS:
        raise ValueError(f"backend: got {name!r}, expected one of {BACKENDS}")
    if name == "numba" and not numba_available():
        why = _numba_error or "MINILSTM_DISABLE_JIT is set"
        raise ImportError(f"backend 'numba' is not available ({why})")
    previous, _State.backend = _State.backend, name
    return previous


@contextlib.contextmanager
def use_backend(name: str):
    """``with use_backend("numpy"): ...`` runs the block on that backend and restores the old one."""
    previous = set_backend(name)
    try:
        yield name
    finally:
        _State.backend = previous


def backend_info() -> dict:
    """What is running: backend, numba version (or why it is missing) and the JIT policy."""
    numba = _numba if _State.backend == "numba" else (_import_numba() if numba_available() else None)
    return {
        "backend": _State.backend,
        "numba": getattr(numba, "__version__", None),
        "numba_error": _numba_error,
        "jit_options": dict(JIT_OPTIONS),
        "cache_dir": str(kernel_cache_dir()) if numba is not None else None,
    }


# Cross-thread signalling for kernels that run as a team of threads (``lstm_team.py``). In the
# numpy build these are plain Python; the numba build maps them to the LLVM intrinsics below.
# A busy wait this long (about 0.1 ms) before a waiting thread starts yielding its core: the
# partner is then most likely descheduled, and spinning would only keep it off the core.
SPIN_BEFORE_YIELD = 1 << 12


def atomic_load(flags, index):
    """flags[index] (an int64 array), read with *acquire* ordering in the numba build: what the
    thread that stored it wrote before its release store is visible after this load."""
    return flags[index]


def atomic_store(flags, index, value):
    """flags[index] <- value, a *release* store in the numba build (see :func:`atomic_load`)."""
    flags[index] = value


def spin_pause(spins):
    """One round of a busy wait: a CPU pause hint; after ``SPIN_BEFORE_YIELD`` rounds, give the
    core away (sched_yield). The numpy build always yields (it holds the GIL otherwise)."""
    time.sleep(0)


def local_array(like, size):
    """A scratch array of ``size`` elements of ``like``'s dtype, for a kernel's accumulators. In
    the numba build it lives on the stack (``size`` must then be a constant), where the compiler
    can keep it in vector registers, as it cannot keep an array from ``np.empty``. It must not
    outlive the kernel that makes it. Registers are not guaranteed: in ``matvec.py`` they came
    only once the loop had a kernel of its own (with a call to another kernel beside it, the
    sums stayed in memory: a 64-column product at H=512 took 2.33 us against 1.28 us)."""
    return np.empty(size, like.dtype)


@functools.lru_cache(maxsize=1)
def _intrinsics() -> dict:
    """Numba builds of atomic_load, atomic_store, spin_pause and local_array (built on first use)."""
    from llvmlite import ir
    from numba.core import cgutils, types
    from numba.core.extending import intrinsic
    from numba.np.arrayobj import populate_array

    def element_pointer(context, builder, array_type, array, index):
        data = context.make_array(array_type)(context, builder, array)
        return cgutils.get_item_pointer(context, builder, array_type, data, [index])

    @intrinsic
    def load_acquire(typingctx, flags, index):
        def codegen(context, builder, sig, args):
            pointer = element_pointer(context, builder, sig.args[0], args[0], args[1])
            return builder.load_atomic(pointer, "acquire", 8)
        return types.int64(flags, index), codegen

    @intrinsic
    def store_release(typingctx, flags, index, value):
        def codegen(context, builder, sig, args):
            pointer = element_pointer(context, builder, sig.args[0], args[0], args[1])
            value = context.cast(builder, args[2], sig.args[2], types.int64)
            builder.store_atomic(value, pointer, "release", 8)
            return context.get_dummy_value()
        return types.void(flags, index, value), codegen

    x86 = platform.machine().lower() in ("x86_64", "amd64", "i386", "i686")
    linux = sys.platform.startswith("linux")

    @intrinsic
    def pause(typingctx, spins):
        def codegen(context, builder, sig, args):
            module = builder.module
            if x86:
                hint = cgutils.get_or_insert_function(module, ir.FunctionType(ir.VoidType(), []),
                                                      "llvm.x86.sse2.pause")
                builder.call(hint, [])
            if linux:     # spins >= SPIN_BEFORE_YIELD: sched_yield()
                long_wait = builder.icmp_signed(">=", args[0], ir.Constant(args[0].type, SPIN_BEFORE_YIELD))
                with builder.if_then(long_wait, likely=False):
                    yield_ = cgutils.get_or_insert_function(module, ir.FunctionType(ir.IntType(32), []),
                                                            "sched_yield")
                    builder.call(yield_, [])
            return context.get_dummy_value()
        return types.void(spins), codegen

    @intrinsic(prefer_literal=True)
    def stack_array(typingctx, like, size):
        if not isinstance(size, types.IntegerLiteral):
            raise TypeError("local_array: the size must be a compile-time constant")
        count = size.literal_value
        array_type = types.Array(like.dtype, 1, "C")

        def codegen(context, builder, sig, args):
            element = context.get_value_type(like.dtype)
            storage = cgutils.alloca_once(builder, ir.ArrayType(element, count))   # in the entry block
            storage.align = 64
            intp = context.get_value_type(types.intp)
            nbytes = ir.Constant(intp, context.get_abi_sizeof(element))
            array = context.make_array(array_type)(context, builder)
            populate_array(array, data=builder.bitcast(storage, element.as_pointer()),
                           shape=[ir.Constant(intp, count)], strides=[nbytes], itemsize=nbytes, meminfo=None)
            return array._getvalue()
        return array_type(like, size), codegen

    return {"atomic_load": load_acquire, "atomic_store": store_release, "spin_pause": pause,
            "local_array": stack_array}


class Kernel:
    """A function with a numpy build (the source itself) and a numba build (compiled lazily).

    Calling the kernel runs the build of the active backend. ``kernel.py`` is the plain function,
    ``kernel.jitted`` the compiled one (tests call both to check they agree).
    """

    def __init__(self, fn):
        functools.update_wrapper(self, fn)
        self.py = fn
        self._variant = None
        self._jitted = None

    def numba_variant(self, fn):
        """Register a loop-based source compiled for the numba backend instead of ``self.py``.

        Returns ``fn`` unchanged, so the variant can also be run uncompiled in parity tests.
        """
        if self._jitted is not None:
            raise RuntimeError(f"{self.__name__}: variant registered after compilation")
        self._variant = fn
        return fn

    @property
    def jitted(self):
        if self._jitted is None:
            numba = _import_numba()
            if numba is None:
                raise ImportError(f"numba is not available ({_numba_error})")
            # Under a lock: batch shards (minilstm.parallel) may reach a kernel first from two
            # threads, and _kernel_cache_dir sets numba's process-wide cache directory.
            with _dispatcher_lock:
                if self._jitted is None:
                    source = _with_jitted_helpers(self._variant or self.py)
                    with _kernel_cache_dir(numba):
                        self._jitted = numba.njit(**JIT_OPTIONS)(source)
        return self._jitted

    def __call__(self, *args):
        if _State.backend == "numba":
            return self.jitted(*args)
        return self.py(*args)

    def __repr__(self):
        return f"<minilstm kernel {self.__module__}.{self.__name__}>"


@functools.lru_cache(maxsize=1)
def kernel_cache_dir() -> Path:
    """The compiled-code cache directory for this exact set of kernel sources."""
    digest = hashlib.sha256()
    for path in sorted(Path(__file__).parent.glob("*.py")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    tag = digest.hexdigest()[:16]
    if os.environ.get("NUMBA_CACHE_DIR"):
        return Path(os.environ["NUMBA_CACHE_DIR"]) / f"minilstm-{tag}"
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "minilstm" / f"numba-{tag}"


@contextlib.contextmanager
def _kernel_cache_dir(numba):
    """Numba reads its cache directory when a dispatcher is created: point it at ours then."""
    config = numba.config
    previous = config.CACHE_DIR
    config.CACHE_DIR = str(kernel_cache_dir())
    try:
        yield
    finally:
        config.CACHE_DIR = previous


def _with_jitted_helpers(fn):
    """A copy of ``fn`` whose global names for other kernels point at their numba builds."""
    namespace = dict(fn.__globals__)
    for name in fn.__code__.co_names:          # only the global names the function reads
        value = fn.__globals__.get(name)
        if isinstance(value, Kernel):
            namespace[name] = value.jitted
        elif any(value is f for f in _INTRINSICS):
            namespace[name] = _intrinsics()[value.__name__]
    copy = types.FunctionType(fn.__code__, namespace, fn.__name__, fn.__defaults__, fn.__closure__)
    copy.__qualname__ = fn.__qualname__
    copy.__module__ = fn.__module__
    copy.__doc__ = fn.__doc__
    return copy


_INTRINSICS = (atomic_load, atomic_store, spin_pause, local_array)


def kernel(fn):
    """Decorator: make ``fn`` a :class:`Kernel` (numpy build now, numba build on first use)."""
    return Kernel(fn)
