"""The schema revision lives in one place: the version sql/absurd.sql reports."""

import pytest

from absurd_tui.db import SchemaError, schema


def test_the_revision_is_read_from_the_version_the_sql_reports():
    text = "CREATE FUNCTION absurd.get_schema_version() ... SELECT '0.4.0+absurd-tui.7'::text"
    assert schema.revision_in(text) == 7


@pytest.mark.parametrize(
    "text",
    [
        "SELECT '0.4.0'::text",
        "SELECT '0.4.0+absurd-tui.1'::text; SELECT '0.4.0+absurd-tui.2'::text",
    ],
)
def test_a_file_without_exactly_one_version_literal_is_refused(text):
    with pytest.raises(SchemaError, match="exactly one"):
        schema.revision_in(text)
