"""A blob written across many writeback steps is still exactly its bytes under its digest."""

from __future__ import annotations

import errno
import hashlib
import os
from pathlib import Path

import pytest

from stackd.images.content import WRITEBACK_STEP, BlobStore
from stackd.images.errors import DigestMismatchError
from stackd.runtime.syscalls import start_writeback


def test_a_blob_spanning_writeback_steps_commits_whole(tmp_path: Path) -> None:
    store = BlobStore(tmp_path / "store")
    data = os.urandom(2 * WRITEBACK_STEP + 12345)
    expected = "sha256:" + hashlib.sha256(data).hexdigest()
    ingest = store.ingest(expected, len(data))
    # Uneven pieces, so the steps fall inside writes, not on their edges.
    for at in range(0, len(data), 3_000_017):
        ingest.write(data[at:at + 3_000_017])
    assert 0 < ingest.written_back <= len(data)
    assert ingest.commit() == expected
    assert store.path(expected).read_bytes() == data
    assert list(store.ingest_dir.iterdir()) == []


def test_a_wrong_blob_past_a_step_is_refused_and_leaves_nothing(tmp_path: Path) -> None:
    store = BlobStore(tmp_path / "store")
    ingest = store.ingest("sha256:" + "0" * 64, None)
    ingest.write(os.urandom(WRITEBACK_STEP + 1))
    with pytest.raises(DigestMismatchError, match="expected sha256:0000"):
        ingest.commit("layer")
    assert list(store.ingest_dir.iterdir()) == []
    assert store.all() == []


def test_start_writeback_reports_the_kernels_refusal_as_oserror() -> None:
    read_end, write_end = os.pipe()
    try:
        with pytest.raises(OSError) as err:
            start_writeback(write_end, 0, 4096)
        assert err.value.errno == errno.ESPIPE
    finally:
        os.close(read_end)
        os.close(write_end)
