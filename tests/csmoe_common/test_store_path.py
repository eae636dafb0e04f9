from __future__ import annotations

import pytest

from csmoe_common.errors import CsmoeError
from csmoe_common.store_path import StorePath, parse_store_path, split_fragment


@pytest.mark.parametrize(
    "text",
    [
        "images/part_00012.parquet#row=7",
        "images/part_00012.parquet#row=7&window=54,54,120",
        "/abs/433U/433U_1185R/S2B_MSIL2A_X#window=174,54,120",
        "S2L2A/ssl4eos12_train_seasonal_data_000001.zarr.zip#sample=12",
        "plain/folder",
    ],
)
def test_round_trip(text: str) -> None:
    assert str(parse_store_path(text)) == text


def test_fields() -> None:
    ref = parse_store_path("a/b.parquet#row=3&window=6,12,120")
    assert ref == StorePath("a/b.parquet", row=3, window=(6, 12, 120))
    assert ref.with_file("/x/b.parquet").file == "/x/b.parquet"
    assert parse_store_path("c.zarr.zip#sample=0").sample == 0


@pytest.mark.parametrize(
    "text",
    ["my#file.tif", "scan#2", "odd#name=1", "x#row=1&colour=2", "x#", "#row=1"],
)
def test_hash_in_a_name_is_not_a_fragment(text: str) -> None:
    assert split_fragment(text) == (text, "")
    assert parse_store_path(text) == StorePath(text)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a.parquet#row=-1", "non-negative"),
        ("a.parquet#row=x", "non-negative"),
        ("a.parquet#row=1&row=2", "twice"),
        ("a#window=1,2", "col_off,row_off,size"),
        ("a#window=1,2,0", "positive size"),
        ("a.zip#row=1&sample=2", "not both"),
    ],
)
def test_bad_fragments_are_one_line_errors(text: str, message: str) -> None:
    with pytest.raises(CsmoeError, match=message):
        parse_store_path(text)
