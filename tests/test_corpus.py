"""Chunking and batching: document boundaries, BOS, padding and count masks."""

from __future__ import annotations

import numpy as np
import pytest

from coe.corpus import Chunk, Segment, iter_batches, iter_chunks, iter_segments
from coe.errors import FormatError


def encode(text: str) -> list[int]:
    return [ord(c) for c in text]


def test_chunks_never_span_documents_and_never_truncate():
    segments = [Segment("abcdefg", True), Segment("hij", False), Segment("xy", True)]
    chunks = list(iter_chunks(segments, encode, body_length=4))
    assert [c.ids for c in chunks] == [encode("abcd"), encode("efgh"), encode("ij"), encode("xy")]
    assert all(all(c.counted) for c in chunks)


def test_uncounted_segments_carry_their_mask_across_chunks():
    segments = [Segment("pq", True, count=False), Segment("rstu", False), Segment("v", True, count=False)]
    chunks = list(iter_chunks(segments, encode, body_length=3))
    assert chunks == [Chunk(encode("pqr"), [False, False, True]), Chunk(encode("stu"), [True] * 3), Chunk(encode("v"), [False])]
    (batch,) = iter_batches(chunks[:1], batch_size=1, pad_id=0, bos_id=2)
    np.testing.assert_array_equal(batch.count_mask, [[0, 0, 0, 1]])


def test_batches_prefix_bos_pad_right_and_count_only_content():
    chunks = [Chunk(ids, [True] * len(ids)) for ids in ([10, 11, 12], [20], [30, 31])]
    batches = list(iter_batches(chunks, batch_size=2, pad_id=0, bos_id=2))
    assert len(batches) == 2
    first = batches[0]
    np.testing.assert_array_equal(first.input_ids, [[2, 10, 11, 12], [2, 20, 0, 0]])
    np.testing.assert_array_equal(first.attention_mask, [[1, 1, 1, 1], [1, 1, 0, 0]])
    np.testing.assert_array_equal(first.count_mask, [[0, 1, 1, 1], [0, 1, 0, 0]])
    np.testing.assert_array_equal(batches[1].input_ids, [[2, 30, 31]])


def test_no_bos_tokenizer_counts_every_real_token():
    (batch,) = iter_batches([Chunk([5, 6], [True, True]), Chunk([7], [True])], batch_size=4, pad_id=0, bos_id=None)
    np.testing.assert_array_equal(batch.count_mask, [[1, 1], [1, 0]])


def test_text_and_jsonl_segments(tmp_path):
    txt = tmp_path / "a.txt"
    txt.write_text("line one\nline two\n")
    jsonl = tmp_path / "b.jsonl"
    jsonl.write_text('{"text": "doc one"}\n\n{"text": "doc two"}\n')
    assert list(iter_segments([txt, jsonl])) == [
        Segment("line one\nline two\n", True),
        Segment("doc one", True),
        Segment("doc two", True),
    ]


def test_large_text_file_streams_in_blocks(tmp_path):
    path = tmp_path / "big.txt"
    path.write_text("x" * 1000 + "\n" * 100 + ("y" * 99 + "\n") * 2000)
    segments = list(iter_segments([path]))
    assert len(segments) > 1 and segments[0].new_document and not any(s.new_document for s in segments[1:])
    assert "".join(s.text for s in segments) == path.read_text()


def test_jsonl_segments(tmp_path):
    path = tmp_path / "s.jsonl"
    path.write_text('{"segments": [{"text": "Q: ", "count": false}, {"text": "A!"}]}\n')
    assert list(iter_segments([path])) == [Segment("Q: ", True, False), Segment("A!", False, True)]


@pytest.mark.parametrize("line", ['{"txt": "x"}', "not json", '{"text": 3}', '{"segments": [3]}'])
def test_bad_jsonl_names_the_line(tmp_path, line):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"text": "fine"}\n' + line + "\n")
    with pytest.raises(FormatError, match="bad.jsonl:2"):
        list(iter_segments([path]))
