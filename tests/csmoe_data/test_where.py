"""The ``--where`` filter language: what it accepts, what it computes, and what it refuses."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from csmoe_data.where import MAX_DEPTH, WhereError, parse_where, tokenize


@pytest.fixture
def frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "lc_40": [0.1, 0.6, np.nan, 0.9, 0.5],
            "kg_major": ["Dfb", "Cfa", None, "Dfb", "BWh"],
            "cloud": [0.0, 0.2, 0.4, 0.8, 1.0],
            "flag": [True, False, True, True, False],
            "count": pd.array([1, None, 3, 4, 6], dtype="Int64"),
            "odd name": [1, 2, 3, 4, 5],
        }
    )


def rows(expr: str, frame: pd.DataFrame) -> list[int]:
    return np.flatnonzero(parse_where(expr).mask(frame)).tolist()


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        ("lc_40 > 0.5", [1, 3]),
        ("lc_40 >= 0.5", [1, 3, 4]),
        ("lc_40 < 0.5", [0]),  # NaN fails every comparison
        ("not (lc_40 > 0.5)", [0, 4]),  # ... and its negation too
        ("lc_40 != 0.5", [0, 1, 3]),
        ("0.1 < lc_40 <= 0.6", [1, 4]),  # chained like Python
        ("kg_major == 'Dfb'", [0, 3]),
        ('kg_major == "Dfb"', [0, 3]),
        ("kg_major != 'Dfb'", [1, 4]),
        ("kg_major in ['Dfb', 'BWh']", [0, 3, 4]),
        ("kg_major not in ['Dfb']", [1, 4]),
        ("cloud in (0, 1.0)", [0, 4]),
        ("isna(lc_40)", [2]),
        ("notna(kg_major) and kg_major.notna()", [0, 1, 3, 4]),
        ("lc_40.isna() or cloud > 0.9", [2, 4]),
        ("flag", [0, 2, 3]),
        ("not flag", [1, 4]),
        ("~flag | cloud == 0", [0, 1, 4]),
        ("flag == True", [0, 2, 3]),
        ("flag & cloud < 0.5", [0, 2]),  # & binds like `and` (pandas), not like Python's &
        ("lc_40 * 2 - 1 > 0", [1, 3]),
        ("-lc_40 < -0.5", [1, 3]),
        ("cloud + lc_40 > 1", [3, 4]),
        ("count % 2 == 0", [3, 4]),  # nullable integers: a missing value fails
        ("count / 2 >= 2", [3, 4]),
        ("`odd name` >= 4", [3, 4]),
        ("(cloud < 0.5 or flag) and not (kg_major == 'Cfa')", [0, 3]),  # None row fails
        ("True", [0, 1, 2, 3, 4]),
        ("1 > 2", []),
        ("cloud < 1e-3", [0]),
    ],
)
def test_expressions(expr: str, expected: list[int], frame: pd.DataFrame) -> None:
    assert rows(expr, frame) == expected


def test_same_rows_as_pandas_on_the_old_syntax(frame: pd.DataFrame) -> None:
    # the expressions the README and the tests used with DataFrame.eval keep their meaning
    for expr in ("lc_40 > 0.5", "cloud < 0.5", "lc_40 > 0.2 and cloud <= 0.8"):
        expected = np.flatnonzero(frame.eval(expr).fillna(False).to_numpy(bool)).tolist()
        assert rows(expr, frame) == expected


def test_breakdown_counts_rows_failing_each_condition(frame: pd.DataFrame) -> None:
    flt = parse_where("lc_40 > 0.5 and (kg_major == 'Dfb') and cloud < 0.5")
    assert flt.conditions() == ["lc_40 > 0.5", "(kg_major == 'Dfb')", "cloud < 0.5"]
    assert flt.breakdown(frame) == [
        ("lc_40 > 0.5", 3),
        ("(kg_major == 'Dfb')", 3),
        ("cloud < 0.5", 2),
    ]
    assert flt.columns() == ["lc_40", "kg_major", "cloud"]


@pytest.mark.parametrize(
    ("expr", "token"),
    [
        ("@sys.modules['os'].system('touch X') == 0", "'@' at position 0"),
        ("cloud.__class__", "'__class__'"),
        ("__import__('os').system('x')", "__import__("),
        ("cloud.mean() > 0", "'mean'"),
        ("cloud[0] > 1", "'['"),
        ("cloud ** 2 > 1", "** is not supported"),
        ("cloud > 0; x", "';'"),
        ("lambda: 1", "':'"),
        ("cloud if flag else 0", "'if'"),
        ("cloud <", "unexpected end"),
        ("(cloud < 1", "unexpected end"),
        ("cloud in [lc_40]", "'lc_40'"),
        ("cloud in 3", "'3'"),
        ("'unterminated", "unterminated quote"),
        ("", "empty expression"),
        ("cloud > 1 2", "'2' at position 10"),
    ],
)
def test_syntax_errors_name_the_token(expr: str, token: str, frame: pd.DataFrame) -> None:
    with pytest.raises(WhereError) as err:
        parse_where(expr).mask(frame)
    message = str(err.value)
    assert "\n" not in message and message.startswith("bad --where expression")
    assert token in message


@pytest.mark.parametrize(
    ("expr", "reason"),
    [
        ("nope > 1", "unknown column 'nope'"),
        ("cloud + 1", "is a number, not a condition"),
        ("kg_major > 1", "cannot compare"),
        ("kg_major + 1 > 2", "needs a number"),
        ("flag + 1 > 2", "needs a number"),
        ("not cloud", "needs a condition"),
        ("cloud and flag", "needs a condition"),
        ("cloud in ['a']", "cannot compare"),
        ("flag < 1", "does not order booleans"),
    ],
)
def test_type_errors_are_one_line(expr: str, reason: str, frame: pd.DataFrame) -> None:
    with pytest.raises(WhereError, match=reason) as err:
        parse_where(expr).mask(frame)
    assert "\n" not in str(err.value)


def test_nesting_and_length_are_bounded() -> None:
    deep = "(" * (MAX_DEPTH + 1) + "cloud" + ")" * (MAX_DEPTH + 1)
    with pytest.raises(WhereError, match="nested deeper"):
        parse_where(deep)
    with pytest.raises(WhereError, match="operators in a chain"):
        parse_where("+".join(["c"] * 600) + " > 1")
    with pytest.raises(WhereError, match="longer than"):
        parse_where("cloud > 1 and " * 1000 + "flag")
    # just inside the bounds works
    ok = "(" * MAX_DEPTH + "cloud > 0.5" + ")" * MAX_DEPTH
    assert parse_where(ok).mask(pd.DataFrame({"cloud": [0.1, 0.9]})).tolist() == [False, True]


def test_nothing_is_executed(tmp_path: pytest.TempPathFactory, frame: pd.DataFrame) -> None:
    marker = tmp_path / "marker"  # type: ignore[operator]
    attempts = [
        f"@sys.modules['os'].system('touch {marker}') == 0",
        f"__import__('os').system('touch {marker}') == 0",
        f"cloud.__class__.__init__.__globals__['os'].system('touch {marker}')",
        f"`__import__('os').system('touch {marker}')` > 0",  # a backtick name is a column name only
    ]
    for expr in attempts:
        with pytest.raises(WhereError):
            parse_where(expr).mask(frame)
    assert not marker.exists()


def test_source_is_named_in_messages(frame: pd.DataFrame) -> None:
    with pytest.raises(WhereError, match="^bad recorded where expression"):
        parse_where("@x", source="recorded where")


def test_tokens_keep_positions() -> None:
    tokens = tokenize("lc_40 >= 0.5 and kg_major in ['Dfb']")
    assert [(t.kind, t.text, t.pos) for t in tokens[:4]] == [
        ("name", "lc_40", 0),
        ("op", ">=", 6),
        ("number", "0.5", 9),
        ("keyword", "and", 13),
    ]
    assert tokens[-1].kind == "end"


def test_empty_frame_and_scalar_conditions() -> None:
    empty = pd.DataFrame({"cloud": pd.Series([], dtype=float)})
    assert parse_where("cloud > 0").mask(empty).shape == (0,)
    assert parse_where("1 < 2").mask(pd.DataFrame({"x": [1, 2]})).tolist() == [True, True]
