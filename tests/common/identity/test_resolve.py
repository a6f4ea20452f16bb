"""Resolution order: an explicit email wins, else the mapping, else MappingMissing naming the
source and id — which an import then fixes."""

from __future__ import annotations

import pytest

from common.identity.applying import apply_batch
from common.identity.resolve import MappingMissing, resolve
from common.identity.staging import stage_file
from tests.common.identity.conftest import RULES, csv_bytes


def test_explicit_email_then_mapping_then_a_named_error(appdb):
    with pytest.raises(MappingMissing) as missing:
        resolve(appdb, "canvas", 42)
    assert "canvas user 42" in str(missing.value)
    assert (missing.value.source, missing.value.user_id) == ("canvas", "42")
    assert resolve(appdb, "canvas", 42, "given@school.example") == "given@school.example"

    text = "lms_source,lms_user_id,google_email\ncanvas,42,mapped@school.example\n"
    apply_batch(appdb, stage_file(appdb, csv_bytes(text), RULES).batch_id)
    assert resolve(appdb, "canvas", 42) == "mapped@school.example"
    assert resolve(appdb, "Canvas", "42 ") == "mapped@school.example"
    assert resolve(appdb, "canvas", "42", "given@school.example") == "given@school.example"
    assert resolve(appdb, "canvas", "42", "  ") == "mapped@school.example"
    with pytest.raises(MappingMissing, match="moodle user 42"):
        resolve(appdb, "moodle", 42)
