"""Giving memory back after big mail (``postfix_archiver.memory``): glibc only, else nothing."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from postfix_archiver import memory


@pytest.fixture
def fresh() -> Iterator[None]:
    """The module's look-ups done anew (they are cached for the process)."""
    memory._libc.cache_clear()
    memory.return_big_blocks.cache_clear()
    yield
    memory._libc.cache_clear()
    memory.return_big_blocks.cache_clear()


@pytest.mark.skipif(not memory.is_glibc(), reason="needs glibc")
def test_on_glibc_the_heaps_are_trimmed_and_big_blocks_mapped(fresh: None) -> None:
    assert memory.return_big_blocks()
    assert memory.release_free_memory()


@pytest.mark.parametrize("answer", [None, ValueError("unrecognized configuration name")])
def test_without_glibc_nothing_is_called(
    fresh: None, monkeypatch: pytest.MonkeyPatch, answer: object
) -> None:
    """musl, macOS, the BSDs: no glibc version to read; no mallopt or malloc_trim to call
    (musl has neither, and calling a missing symbol through ctypes would raise)."""

    def confstr(name: str) -> str | None:
        if isinstance(answer, Exception):
            raise answer
        return None

    monkeypatch.setattr(os, "confstr", confstr)
    assert not memory.is_glibc()
    assert memory.return_big_blocks() is False
    assert memory.release_free_memory() is False
