"""Build the optional C accelerator for decimal parsing; tradeloop runs without it (pure Python)."""

from pathlib import Path

from setuptools import Extension, setup

source = Path("src/tradeloop/core/_fastparse.c")
extensions = (
    [Extension("tradeloop.core._fastparse", [str(source)], optional=True, extra_compile_args=["-O2"])]
    if source.exists()
    else []
)

setup(ext_modules=extensions)
