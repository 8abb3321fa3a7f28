"""minilstm: LSTM language models from scratch in NumPy, made fast with Numba."""
from pathlib import Path

from setuptools import find_packages, setup

here = Path(__file__).parent
version = {}
exec((here / "minilstm" / "_version.py").read_text(), version)

setup(
    name="minilstm",
    version=version["__version__"],
    description="From-scratch LSTM language models: NumPy maths, Numba speed, verified gradients.",
    long_description=(here / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    license="MIT",           # an SPDX expression (license classifiers are deprecated)
    python_requires=">=3.10",
    packages=find_packages(include=["minilstm", "minilstm.*"]),
    install_requires=[
        "numpy>=1.24",
        "numba>=0.58",
        "scipy>=1.10",       # numba's np.dot / @ call the BLAS that scipy ships
        "tqdm>=4.60",        # the training progress bar
        "matplotlib>=3.5",   # loss curves and the internals plots
    ],
    extras_require={
        "test": ["pytest>=7", "hypothesis>=6"],
        "ref": ["torch"],    # reference implementation for parity tests and benchmarks
    },
    entry_points={"console_scripts": ["minilstm=minilstm.cli:main"]},
    classifiers=[
        "Programming Language :: Python :: 3",
        "Topic :: Scientific/Engineering :: Artificial Intelligence",
    ],
)
