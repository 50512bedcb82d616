"""Synthetic loan books for demos, tests, training and benchmarks (deterministic by seed),
and the event history behind them (:mod:`kernel.synth.events`)."""
from .book import (CHUNK, DEFAULT_AS_OF, SNAPSHOT_KEY, SNAPSHOT_TIME, book_schema, generate, iter_book, snapshot_at,
                   write_book)
from .events import events_schema, generate_events, iter_book_and_events, iter_events, write_events

__all__ = ["CHUNK", "DEFAULT_AS_OF", "SNAPSHOT_KEY", "SNAPSHOT_TIME", "book_schema", "generate", "iter_book",
           "snapshot_at", "write_book", "events_schema", "generate_events", "iter_book_and_events", "iter_events",
           "write_events"]
