"""memcomp: memory, time and accuracy benchmarks for optimization-based meta-learning."""

__version__ = "0.1.0"
