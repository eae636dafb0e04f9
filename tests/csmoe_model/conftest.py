"""Tests of the model half run single-threaded: on a shared 2-core machine, torch's thread pool spinning
against other processes makes tiny models ~20x slower."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch


@pytest.fixture(autouse=True)
def _one_torch_thread() -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
