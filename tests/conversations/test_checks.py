from django.core.checks import run_checks

from conversations.checks import sqlite_new_enough


def test_a_misconfigured_backend_fails_the_system_checks(settings):
    settings.LLM_BACKEND = "openai"
    settings.OPENAI_BASE_URL = ""
    errors = [m for m in run_checks() if m.id == "companion.E001"]
    assert len(errors) == 1
    assert "OPENAI_BASE_URL" in errors[0].msg


def test_the_default_configuration_passes_the_system_checks(settings):
    settings.LLM_BACKEND = "local"
    assert not [m for m in run_checks() if m.id == "companion.E001"]


def test_too_old_a_sqlite_fails_the_system_checks():
    sqlite = ["sqlite"]
    errors = sqlite_new_enough(sqlite_version=(3, 31, 1), vendors=sqlite)
    assert [e.id for e in errors] == ["companion.E002"]
    assert "3.31.1" in errors[0].msg
    assert not sqlite_new_enough(sqlite_version=(3, 35, 0), vendors=sqlite)
    assert not sqlite_new_enough(sqlite_version=(3, 31, 1), vendors=["postgresql"])


def test_this_sqlite_passes():
    assert not [m for m in run_checks() if m.id == "companion.E002"]
