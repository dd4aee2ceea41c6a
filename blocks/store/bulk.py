"""DuckDB loads a spooled segment itself: one read of the file, one guarded insert per record kind.

Validating every spooled line in Python (json.loads, pydantic, json.dumps to a staging file) cost
~3/4 of an ingest. Here DuckDB reads the segment (`read_json`, each record's data kept as JSON text;
its keys and fields taken in one parse each: a MAP column cost ~4x) and inserts it with the anti
join on the id in one statement per kind, converting only the rows it keeps. Python only
states the rules: a guard generated from the record model's JSON schema (types, bounds, enums,
lengths, exact key set) plus what the schema cannot say (ids not blank, no NUL anywhere, no NaN or
Infinity, timestamps in UTC, ids unique in the segment), evaluated on every line, duplicates
included, inside the insert itself. A guard is a *sufficient* condition for the
model to accept the line unchanged: whatever it cannot vouch for (a rejected record, a record the
model would clean, a field shape it cannot check) sends the whole segment to the per-line path in
`store.py`, as does any DuckDB error, so every rejection, reason and clean-up stays the model's.
Column lists come from the table (DESCRIBE) and the model's fields, never from a list kept here.
"""

from __future__ import annotations

import functools
import json
from typing import Any

import duckdb
from pydantic import AfterValidator, BaseModel, BeforeValidator, PlainValidator, WrapValidator

from routing.models import id_fields

_JSON_INTEGER = r"-?[0-9]+"
_JSON_NUMBER = r"-?[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?"
_UTC_TIMESTAMP = r"\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(\.\d{1,6})?Z?"  # DuckDB ignores other offsets
_NUMBERS_ONLY = r"\[[-+0-9.eE, ]*\]"
_VALIDATORS = (AfterValidator, BeforeValidator, PlainValidator, WrapValidator)


DOUBT = "spooled line the bulk guard cannot vouch for"


class Doubt(Exception):
    """A line the guard cannot vouch for: the segment takes the per-line path."""


class Unsupported(Exception):
    """A field shape the guard cannot check in SQL: lines of that kind take the per-line path."""


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _check(schema: dict[str, Any], defs: dict[str, Any], v: str) -> str:
    """SQL that is true when the JSON value `v` surely satisfies `schema` (else Unsupported).

    Tests work on the value's JSON text (`raw`, free to read) rather than parsing it again: DuckDB
    writes strings back with only control characters, quotes and backslashes escaped, so a string's
    text is never shorter than the string and a NUL shows as `\\u0000`.
    """
    if "$ref" in schema:
        return _check(defs[schema["$ref"].rsplit("/", 1)[-1]], defs, v)
    if "anyOf" in schema:
        return "(" + " OR ".join(_check(branch, defs, v) for branch in schema["anyOf"]) + ")"
    kind = schema.get("type")
    raw = f"CAST({v} AS VARCHAR)"
    terms: list[str]
    if kind == "null":
        return f"{raw} = 'null'"
    if kind == "boolean":
        return f"{raw} IN ('true', 'false')"
    if kind in ("integer", "number"):
        value = f"TRY_CAST({raw} AS {'HUGEINT' if kind == 'integer' else 'DOUBLE'})"
        terms = [f"regexp_full_match({raw}, {_quote(_JSON_INTEGER if kind == 'integer' else _JSON_NUMBER)})"]
        if kind == "number":
            terms.append(f"isfinite({value})")
        for key, op in (("minimum", ">="), ("maximum", "<="), ("exclusiveMinimum", ">"), ("exclusiveMaximum", "<")):
            if key in schema:
                terms.append(f"{value} {op} {schema[key]!r}")
        return "(" + " AND ".join(terms) + ")"
    if kind == "string":
        terms = [f"starts_with({raw}, '\"')", f"NOT contains({raw}, '\\u0000')"]
        if "enum" in schema:
            terms.append(f"{raw} IN ({', '.join(_quote(json.dumps(str(e))) for e in schema['enum'])})")
        if schema.get("format") == "date-time":
            terms.append(f"regexp_full_match({raw}, {_quote(chr(34) + _UTC_TIMESTAMP + chr(34))})")
        elif "format" in schema or "pattern" in schema:
            raise Unsupported(schema)
        if schema.get("minLength", 0) > 1:
            terms.append(f"length({v}->>'$') >= {int(schema['minLength'])}")
        elif schema.get("minLength") == 1:
            terms.append(f"{raw} <> '\"\"'")
        if "maxLength" in schema:
            terms.append(f"length({raw}) - 2 <= {int(schema['maxLength'])}")
        return "(" + " AND ".join(terms) + ")"
    if kind == "object" and set(schema) <= {"type", "title", "description", "additionalProperties"}:
        # free-form (metadata): the model turns NaN into None and cleans NUL, so neither may appear
        return (f"(starts_with({raw}, '{{') AND NOT contains({raw}, '\\u0000') "
                f"AND NOT regexp_matches({raw}, 'NaN|Infinity'))")
    if kind == "array" and schema.get("items", {}).get("type") == "number" and "maxItems" not in schema:
        items = schema["items"]
        terms = [f"regexp_full_match({raw}, {_quote(_NUMBERS_ONLY)})"]
        bounds = [f"x {op} {items[key]!r}" for key, op in (("minimum", ">="), ("maximum", "<=")) if key in items]
        if bounds:
            terms.append(f"list_bool_and(list_transform(TRY_CAST({v} AS DOUBLE[]), lambda x: {' AND '.join(bounds)}))")
        return "(" + " AND ".join(terms) + ")"
    raise Unsupported(schema)


@functools.cache
def guard(model: type[BaseModel], length: int | None = None) -> str:
    """A SQL predicate over `fields(model)` true when the model would take the line as it is (raises
    Unsupported when it cannot say); `length` is the stored embedding size, if any."""
    ids = id_fields(model)
    for name, info in model.model_fields.items():
        if name not in ids and any(isinstance(m, _VALIDATORS) for m in info.metadata):
            raise Unsupported(f"{name} has a validator")
    decorators = model.__pydantic_decorators__
    checks = set(decorators.model_validators) | set(decorators.field_validators) | set(decorators.validators)
    if checks - {"_sanitise"}:  # a rule the JSON schema does not show (cleaning is guarded line-wide)
        raise Unsupported(f"validators {sorted(checks)}")
    schema = model.model_json_schema()
    if schema.get("additionalProperties") is not False:
        raise Unsupported("extra keys allowed")
    defs = schema.get("$defs", {})
    fields = sorted(schema["properties"])
    terms = [f"list_sort(_keys) = [{', '.join(_quote(f) for f in fields)}]"]
    for name, field_schema in schema["properties"].items():
        value = _ident(name)
        terms.append(_check(field_schema, defs, value))
        if name in ids:  # not blank: a printable ASCII character is enough to be sure
            terms.append(f"regexp_matches({value}->>'$', '[!-~]')")
        if name == "embedding" and length is not None:  # another size is stored as NULL: per-line path
            terms.append(f"(CAST({value} AS VARCHAR) = 'null' OR json_array_length({value}) = {length})")
    return " AND ".join(terms)


def columns(con: duckdb.DuckDBPyConnection, table: str) -> dict[str, str]:
    """Column name -> type, as the table has them now (a later migration's columns included)."""
    return dict(con.execute(f"SELECT column_name, column_type FROM (DESCRIBE {_ident(table)})").fetchall())


def fields(model: type[BaseModel]) -> str:
    """The line's keys and each field's JSON value (SQL NULL when absent) as a column of its own, each
    found by one parse of the line (`json_keys`, one multi-path `json_extract`) for the guard and the
    projection to read as often as they need."""
    names = list(model.model_fields)
    paths = ", ".join(_quote("$." + json.dumps(n)) for n in names)
    return ", ".join(["_keys"] + [f"_values[{i}] AS {_ident(n)}" for i, n in enumerate(names, start=1)]) + (
        f" FROM (SELECT kind, json_keys(data) AS _keys, json_extract(data, [{paths}]) AS _values FROM spooled)"
    )


def _converted(name: str, kind: str, source: str = "staged") -> str:
    """SQL turning the field's JSON value (a column of `source`) into a value of the column's type."""
    value = f"{source}.{_ident(name)}"
    if kind == "VARCHAR":
        return f"{value}->>'$'"
    if kind == "JSON":
        return f"nullif(CAST({value} AS VARCHAR), 'null')::JSON"
    return f"CAST({value} AS {kind})"


def projection(model: type[BaseModel], table_columns: dict[str, str]) -> str:
    """The SELECT list turning the fields' JSON values into the table's columns (by name): the model's
    fields the table has; a column the model lacks keeps its default."""
    return ", ".join(
        f"{_converted(name, table_columns[name])} AS {_ident(name)}" for name in model.model_fields if name in table_columns
    )


def rows(con: duckdb.DuckDBPyConnection, model: type[BaseModel], table: str) -> str:
    """A subquery of the lines of kind `$kind` converted to the table's columns (for statements that
    derive other rows from them; the insert has already guarded every line)."""
    return f"(SELECT {projection(model, columns(con, table))} FROM (SELECT kind, {fields(model)} WHERE kind = $kind) AS staged)"


def read_segment(con: duckdb.DuckDBPyConnection, path: str) -> None:
    """The segment as the temporary table `spooled(kind, data)`; raises on anything DuckDB cannot read."""
    con.execute(
        "CREATE OR REPLACE TEMP TABLE spooled AS SELECT kind, data FROM read_json(?, format='newline_delimited', "
        "columns={'kind': 'VARCHAR', 'data': 'JSON'}, ignore_errors=false)",
        [path],
    )


def kinds_present(con: duckdb.DuckDBPyConnection) -> dict[str | None, int]:
    return dict(con.execute("SELECT kind, count(*) FROM spooled GROUP BY kind").fetchall())


def unique_ids(con: duckdb.DuckDBPyConnection, kind: str, key: str) -> bool:
    """No id appears twice among the lines of `kind` (the per-line path keeps the last of them)."""
    (ids, rows) = con.execute(
        f"SELECT count(DISTINCT json_extract(data, {_quote('$.' + json.dumps(key))})), count(*) FROM spooled "
        "WHERE kind = ?", [kind]
    ).fetchone()
    return ids == rows


def insert(
    con: duckdb.DuckDBPyConnection, kind: str, table: str, key: str, model: type[BaseModel], predicate: str
) -> int:
    """Insert the lines of `kind` whose id the table lacks (anti join, inside the caller's
    transaction); returns the rows added. A line failing `predicate` raises `Doubt` from inside the
    statement (DuckDB's `error()` in a CASE, which evaluates it for that line only, whatever order
    the optimizer gives the filters), so the guard costs no pass of its own. Every line is guarded,
    duplicates too (the per-line path refuses a bad duplicate as well); only new rows are converted."""
    table_columns = columns(con, table)
    try:
        (added,) = con.execute(
            f"INSERT INTO {_ident(table)} BY NAME SELECT {projection(model, table_columns)} FROM "
            f"(SELECT * FROM (SELECT kind, {fields(model)} WHERE kind = $kind) "
            f"WHERE CASE WHEN kind IS DISTINCT FROM $kind THEN false WHEN coalesce({predicate}, false) THEN true "
            f"ELSE error({_quote(DOUBT)}) END) AS staged "
            f"ANTI JOIN {_ident(table)} AS stored ON stored.{_ident(key)} = {_converted(key, table_columns[key])}",
            {"kind": kind},
        ).fetchone()
    except duckdb.InvalidInputException as exc:
        if DOUBT in str(exc):
            raise Doubt from exc
        raise
    return added


def drop(con: duckdb.DuckDBPyConnection) -> None:
    con.execute("DROP TABLE IF EXISTS spooled")


