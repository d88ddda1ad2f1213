"""docs/configuration.md's table is the configuration reference: it must list exactly the
variables of `Settings`, each with its real default."""

import os
import re
from typing import Any

import pytest
from pydantic import TypeAdapter
from pydantic.fields import FieldInfo

from service.settings import Settings
from tests.support.paths import ROOT

CONFIGURATION = ROOT / "docs" / "configuration.md"
HEADER = ("variable", "default", "meaning")
# How the table writes a default that is not a literal value.
UNSET = "unset"  # the variable is absent: None, or an empty string
CORE_COUNT = "number of cores"  # web_concurrency's default_factory
CODE = re.compile(r"^`([^`]*)`")


def _cells(line: str) -> list[str]:
    # Split on the pipes between cells, not on an escaped pipe inside one.
    return [cell.strip() for cell in re.split(r"(?<!\\)\|", line.strip().strip("|"))]


def documented(markdown: str) -> dict[str, str]:
    """The one table whose header is `| variable | default | meaning |`: {name: default cell}."""
    tables: list[dict[str, str]] = []
    rows: dict[str, str] | None = None
    for line in markdown.splitlines():
        if not line.startswith("|"):
            rows = None
            continue
        cells = _cells(line)
        if rows is None:
            if tuple(cells) == HEADER:
                rows = {}
                tables.append(rows)
            continue
        if set(line) <= set("|-: "):
            continue  # the delimiter row
        name = CODE.match(cells[0])
        assert name is not None, f"not a `VARIABLE` cell: {line!r}"
        assert name.group(1) not in rows, f"{name.group(1)} appears twice"
        rows[name.group(1)] = cells[1]
    assert len(tables) == 1, f"expected one configuration table, found {len(tables)}"
    return tables[0]


def documented_default(cell: str, field: FieldInfo) -> Any:
    """The value the table says the field has when its variable is absent."""
    if cell.startswith(UNSET):
        return UNSET
    if cell == CORE_COUNT:
        return os.cpu_count() or 1
    literal = CODE.match(cell)
    assert literal is not None, f"a default is `a literal`, {UNSET!r}… or {CORE_COUNT!r}: {cell!r}"
    # Read the literal as the environment would be: the field's own type, in pydantic's lax mode.
    assert field.annotation is not None
    return TypeAdapter(field.annotation).validate_python(literal.group(1))


def real_default(field: FieldInfo) -> Any:
    value = field.get_default(call_default_factory=True, validated_data={})
    return UNSET if value in (None, "") else value


TABLE = documented(CONFIGURATION.read_text(encoding="utf-8"))
FIELDS = {name.upper(): field for name, field in Settings.model_fields.items()}


def test_the_table_lists_every_setting_and_nothing_else() -> None:
    assert sorted(set(FIELDS) - set(TABLE)) == [], "settings missing from the table"
    assert sorted(set(TABLE) - set(FIELDS)) == [], "variables in the table that Settings lacks"


def test_settings_are_read_from_their_upper_case_names() -> None:
    # What makes the table's names the environment's: no prefix, no aliases.
    assert Settings.model_config.get("env_prefix", "") == ""
    assert all(field.alias is None for field in Settings.model_fields.values())


@pytest.mark.parametrize("variable", sorted(FIELDS))
def test_the_documented_default_is_the_real_one(variable: str) -> None:
    field = FIELDS[variable]
    assert variable in TABLE, f"{variable} is not in the table"
    assert documented_default(TABLE[variable], field) == real_default(field)


def test_the_core_count_default_is_only_where_a_factory_is() -> None:
    for variable, cell in TABLE.items():
        if cell == CORE_COUNT and variable in FIELDS:
            assert FIELDS[variable].default_factory is not None, variable


def test_a_default_that_differs_is_caught() -> None:
    """The comparison can fail: a wrong literal, a wrong kind of default."""
    port = FIELDS["PORT"]
    assert documented_default("`8081`", port) != real_default(port)
    assert documented_default("unset: no port", port) != real_default(port)
    flag = FIELDS["FAST_PATHS"]
    assert documented_default("`false`", flag) != real_default(flag)
    path = FIELDS["DATA_DIR"]
    assert documented_default("`data`", path) != real_default(path)
    assert documented_default("`.data`", path) == real_default(path)
