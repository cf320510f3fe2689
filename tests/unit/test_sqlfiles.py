"""The one SQL-file loader: each named query has one description line, and a file that
breaks the format is refused at load, naming the query."""

from __future__ import annotations

import pytest

from dogqueue.backend.kit.sqlfiles import SqlFileError, load_queries, parse_queries

SHIPPED = [
    ("dogqueue.backend.sqlite", "sql/queries.sql"),
    ("dogqueue.backend.sqlite", "sql/log.sql"),
    ("dogqueue.backend.postgres", "sql/queries.sql"),
    ("dogqueue.backend.sqlite", "sql/browser.sql"),
    ("dogqueue.backend.postgres", "sql/browser.sql"),
]


def test_a_query_is_its_sql_without_the_description() -> None:
    text = "-- name: one\n-- The first job.\n-- Ordered by position.\nSELECT 1;\n\n"
    text += "-- name: two\n-- Nothing.\nSELECT 2;\n"
    assert parse_queries(text) == {"one": "-- Ordered by position.\nSELECT 1;", "two": "SELECT 2;"}


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("-- name: bare\nSELECT 1;\n", "'bare' has no '-- description' line"),
        ("-- name: empty\n-- Says what.\n\n", "'empty' has no SQL"),
        ("-- name: x\n-- A.\nSELECT 1;\n-- name: x\n-- B.\nSELECT 2;\n", "'x' is named twice"),
    ],
)
def test_a_broken_file_is_refused_naming_the_query(text: str, says: str) -> None:
    with pytest.raises(SqlFileError, match=says):
        parse_queries(text, "pkg/sql/queries.sql")


@pytest.mark.parametrize(("package", "file"), SHIPPED)
def test_every_shipped_query_is_described(package: str, file: str) -> None:
    queries = load_queries(package, file)
    assert queries and all(sql and not sql.startswith("-- name:") for sql in queries.values())
