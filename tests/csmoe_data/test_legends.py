"""Legend registry: built-ins, user JSON/CSV legends, errors."""

from __future__ import annotations

import json

import numpy as np
import pytest

from csmoe_common.errors import UnknownNameError
from csmoe_data.errors import CsmoeDataError
from csmoe_data.legends import NODATA, UNKNOWN, legend_kind, list_legends, load_legend


@pytest.mark.parametrize(
    ("name", "n", "first", "last", "nodata"),
    [
        ("worldcover", 11, "lc_10", "lc_100", (0,)),
        ("corine", 44, "lc_111", "lc_523", (990, 995, 999)),
        ("corine-index", 44, "lc_111", "lc_523", (48, 49, 50, 255)),
        ("modis-igbp", 17, "lc_0", "lc_16", (255,)),
        ("dynamic-world", 9, "lc_0", "lc_8", ()),
        ("nlcd", 20, "lc_11", "lc_95", (0, 250)),
        ("koppen-beck", 30, "kg_Af", "kg_EF", (0,)),
        ("koppen-rubel", 31, "kg_Af", "kg_ET", (32,)),
    ],
)
def test_builtins(name, n, first, last, nodata):
    legend = load_legend(name, legend_kind(name))
    assert len(legend.classes) == n
    assert legend.columns[0] == first and legend.columns[-1] == last
    assert legend.nodata == nodata
    assert legend.reference
    assert all(
        c.color is None or (c.color.startswith("#") and len(c.color) == 7) for c in legend.classes
    )


def test_koppen_symbols_and_groups():
    beck = load_legend("koppen-beck", "climate")
    rubel = load_legend("koppen-rubel", "climate")
    # the two encodings give the same symbols, in different orders / code values
    assert set(beck.keys) | {"As"} == set(rubel.keys)
    assert beck.classes[beck.index_of(15)].symbol == "Cfb"
    assert rubel.classes[rubel.index_of(10)].symbol == "Cfb"
    assert rubel.index_of(32) == NODATA and rubel.index_of(99) == UNKNOWN
    assert {c.group for c in rubel.classes} == set("ABCDE")
    assert all(c.group == c.symbol[0] for c in rubel.classes)


def test_corine_index_reports_level3_codes():
    idx = load_legend("corine-index", "landcover")
    cor = load_legend("corine", "landcover")
    assert idx.columns == cor.columns
    assert idx.codes[idx.index_of(1)] == 111 and idx.codes[idx.index_of(12)] == 211
    assert idx.codes[idx.index_of(44)] == 523
    table = idx.lookup_table(256)
    assert table[48] == NODATA and table[0] == UNKNOWN and table[1] == 0


def test_lookup_table():
    igbp = load_legend("modis-igbp", "landcover")
    t = igbp.lookup_table(256)
    np.testing.assert_array_equal(t[:17], np.arange(17))
    assert t[255] == NODATA and t[17] == UNKNOWN


def test_user_json_forms(tmp_path):
    simple = tmp_path / "simple.json"
    simple.write_text(json.dumps({"1": "forest", "2": "water"}))
    rich = tmp_path / "rich.json"
    rich.write_text(
        json.dumps(
            {"5": {"name": "crops", "color": "#FFAA00"}, "9": {"name": "fill", "nodata": True}}
        )
    )
    a = load_legend(simple, "landcover")
    assert a.columns == ["lc_1", "lc_2"] and a.source.endswith("simple.json") and a.name == "simple"
    b = load_legend(str(rich), "landcover")
    assert b.columns == ["lc_5"] and b.classes[0].color == "#ffaa00" and b.nodata == (9,)
    # a Köppen legend with symbols, and Beck's published {"code": {"symbol", "rgb"}} form
    kg = tmp_path / "kg.json"
    kg.write_text(json.dumps({"1": "Cfb", "2": "Dfc", "3": "Ocean"}))
    k = load_legend(kg, "climate")
    assert k.columns == ["kg_Cfb", "kg_Dfc"] and k.nodata == (3,) and k.classes[1].group == "D"
    beck = tmp_path / "beck.json"
    beck.write_text(json.dumps({"15": {"symbol": "Cfb", "rgb": [100, 255, 80]}}))
    assert load_legend(beck, "climate").classes[0].color == "#64ff50"


def test_user_csv(tmp_path):
    f = tmp_path / "leg.csv"
    f.write_text("code,name,color\n10,Trees,#006400\n20,Shrubs,\n")
    legend = load_legend(f, "landcover")
    assert legend.columns == ["lc_10", "lc_20"] and legend.classes[1].color is None
    g = tmp_path / "kg.csv"
    g.write_text("code,name\n1,Af\n")
    assert load_legend(g, "climate").columns == ["kg_Af"]


def test_errors(tmp_path):
    with pytest.raises(UnknownNameError, match="known: worldcover, corine"):
        load_legend("glc", "landcover")
    with pytest.raises(CsmoeDataError, match="koppen-beck, koppen-rubel"):
        load_legend("modis-igbp", "climate")
    with pytest.raises(CsmoeDataError, match="not found"):
        load_legend(tmp_path / "none.json", "landcover")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(CsmoeDataError, match="not valid JSON"):
        load_legend(bad, "landcover")
    notkg = tmp_path / "notkg.json"
    notkg.write_text(json.dumps({"1": "forest"}))
    with pytest.raises(CsmoeDataError, match="Köppen symbol"):
        load_legend(notkg, "climate")
    code = tmp_path / "code.csv"
    code.write_text("code,name\nx,forest\n")
    with pytest.raises(CsmoeDataError, match="not an integer"):
        load_legend(code, "landcover")
    color = tmp_path / "color.csv"
    color.write_text("code,name,color\n1,forest,green\n")
    with pytest.raises(CsmoeDataError, match="colour"):
        load_legend(color, "landcover")
    empty = tmp_path / "empty.json"
    empty.write_text("{}")
    with pytest.raises(CsmoeDataError, match="no classes"):
        load_legend(empty, "landcover")


def test_metadata_is_json():
    for name in list_legends():
        meta = load_legend(name, legend_kind(name)).to_metadata()
        assert json.loads(json.dumps(meta))["columns"]
