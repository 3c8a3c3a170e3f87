"""Corpora: reading documents and cutting them into model-sized token chunks."""

from coe.corpus.reader import Batch, Chunk, Segment, corpus_digest, iter_batches, iter_chunks, iter_segments

__all__ = ["Batch", "Chunk", "Segment", "corpus_digest", "iter_batches", "iter_chunks", "iter_segments"]
