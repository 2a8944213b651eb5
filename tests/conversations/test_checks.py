from django.core.checks import run_checks


def test_a_misconfigured_backend_fails_the_system_checks(settings):
    settings.LLM_BACKEND = "openai"
    settings.OPENAI_BASE_URL = ""
    errors = [m for m in run_checks() if m.id == "companion.E001"]
    assert len(errors) == 1
    assert "OPENAI_BASE_URL" in errors[0].msg


def test_the_default_configuration_passes_the_system_checks(settings):
    settings.LLM_BACKEND = "local"
    assert not [m for m in run_checks() if m.id == "companion.E001"]
