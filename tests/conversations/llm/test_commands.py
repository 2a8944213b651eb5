"""`llm_check` and `fake_m2her`, run as an operator would."""

import io
import os
import re
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from django.core.management import call_command

from conversations.llm.fake_server import FakeM2her

ROOT = Path(__file__).resolve().parents[3]
KEY = "sk-api-check-key"


@pytest.fixture
def fake_in_thread():
    with FakeM2her.in_thread(api_key=KEY) as server:
        yield server


@pytest.fixture
def pointed_at_fake(settings, fake_in_thread):
    settings.LLM_BACKEND = "m2her"
    settings.M2HER_API_KEY = KEY
    settings.M2HER_BASE_URL = fake_in_thread.base_url
    settings.M2HER_API_STYLE = "chat_completions"
    settings.LLM_MAX_RETRIES = 0
    return fake_in_thread


def test_llm_check_streams_a_reply_and_reports_usage(fake_in_thread):
    env = {
        **os.environ,
        "LLM_BACKEND": "m2her",
        "M2HER_API_KEY": KEY,
        "M2HER_BASE_URL": fake_in_thread.base_url,
    }

    result = subprocess.run(
        [sys.executable, "manage.py", "llm_check", "--prompt", "hello lighthouse"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert lines[0] == "You said: hello lighthouse"
    assert re.fullmatch(r"finish_reason=stop prompt_tokens=\d+ completion_tokens=4", lines[-1])
    assert KEY not in result.stdout + result.stderr


def test_llm_check_sends_the_prompt_the_builder_made(pointed_at_fake):
    call_command(
        "llm_check", "--prompt", "who are you?", stdout=io.StringIO(), stderr=io.StringIO()
    )

    messages = pointed_at_fake.requests[-1].body["messages"]
    assert messages[0]["role"] == "system"
    assert messages[0]["name"] == "Mira"
    assert [m["role"] for m in messages].count("system") == 1
    assert {"sample_message_user", "sample_message_ai", "user_system"} <= {
        m["role"] for m in messages
    }
    assert messages[-1] == {"role": "user", "content": "who are you?", "name": "Sam"}


def test_llm_check_without_streaming(pointed_at_fake):
    out = io.StringIO()

    call_command(
        "llm_check", "--no-stream", "--prompt", "calm seas", stdout=out, stderr=io.StringIO()
    )

    assert out.getvalue().splitlines()[0] == "You said: calm seas"
    assert "finish_reason=stop" in out.getvalue()
    assert pointed_at_fake.requests[-1].body["stream"] is False


def test_llm_check_failure_exits_1_with_the_error_code(pointed_at_fake):
    err = io.StringIO()

    with pytest.raises(SystemExit) as exit_info:
        call_command("llm_check", "--prompt", "[[balance]]", stdout=io.StringIO(), stderr=err)

    assert exit_info.value.code == 1
    assert "error: insufficient_balance: The model service account has run out of credit." in (
        err.getvalue()
    )
    assert KEY not in err.getvalue()


def test_fake_m2her_command_serves_until_stopped():
    process = subprocess.Popen(
        [sys.executable, "manage.py", "fake_m2her", "--port", "0", "--tokens-per-second", "0"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        banner = process.stdout.readline()
        found = re.search(r"http://\S+", banner)
        assert found is not None, banner
        base_url = found.group(0)
        response = httpx.post(
            base_url + "/v1/chat/completions",
            json={"model": "M2-her", "messages": [{"role": "user", "content": "ping"}]},
            timeout=10,
        )
    finally:
        process.terminate()
        process.wait(10)

    assert response.status_code == 200
    assert response.json()["choices"][0]["message"]["content"] == "You said: ping"
