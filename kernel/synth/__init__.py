"""Synthetic loan books for demos, tests, training and benchmarks (deterministic by seed)."""
from .book import CHUNK, DEFAULT_AS_OF, generate, iter_book, write_book

__all__ = ["CHUNK", "DEFAULT_AS_OF", "generate", "iter_book", "write_book"]
