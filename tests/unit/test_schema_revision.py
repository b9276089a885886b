"""The engine revision lives in one place: the c_revision constant of sql/absurd.sql."""

import pytest

from absurd_tui.db import SchemaError, schema


def test_the_revision_is_read_from_the_constant_the_sql_declares():
    text = "DO $$ DECLARE c_revision constant integer := 7; BEGIN ... END $$"
    assert schema.revision_in(text) == 7


def test_the_shipped_file_declares_the_revision_once():
    assert schema.revision_in(schema.schema_sql()) == schema.SCHEMA_REVISION >= 2


@pytest.mark.parametrize(
    "text",
    [
        "SELECT '0.5.1'::text",
        "c_revision constant integer := 1; c_revision constant integer := 2;",
    ],
)
def test_a_file_without_exactly_one_revision_is_refused(text):
    with pytest.raises(SchemaError, match="exactly one"):
        schema.revision_in(text)
