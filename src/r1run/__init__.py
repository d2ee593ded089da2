"""r1run: run DeepSeek-R1 and other very large GGUF models locally, fast and honestly measured."""

__version__ = "0.1.0"
