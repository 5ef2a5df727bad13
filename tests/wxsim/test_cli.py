"""``python -m wxsim``: options from the environment, stdout line, ready file."""

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from tests.wxsim.client import wait_until
from wxsim.__main__ import parse_args

ROOT = Path(__file__).resolve().parents[2]


def test_cli_reads_env_prints_url_and_writes_ready_file(tmp_path):
    ready = tmp_path / "wxsim.url"
    env = {
        **os.environ,
        "WXSIM_APPID": "wxcliappid000001",
        "WXSIM_SECRET": "cli-secret",
        "WXSIM_PORT": "0",
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "wxsim", "--ready-file", str(ready), "--retry-scale", "0.01"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = process.stdout.readline().strip()
        assert line.startswith("wxsim listening on http://127.0.0.1:")
        base_url = wait_until(lambda: ready.exists() and ready.read_text().strip())
        assert line.endswith(base_url)
        code = requests.post(base_url + "/sim/login", json={}, timeout=5).json()["code"]
        answer = requests.get(
            base_url + "/sns/jscode2session",
            timeout=5,
            params={
                "appid": "wxcliappid000001",
                "secret": "cli-secret",
                "js_code": code,
                "grant_type": "authorization_code",
            },
        )
        assert "openid" in json.loads(answer.text)
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=5) == 0


def test_cli_rejects_a_short_mch_key():
    result = subprocess.run(
        [sys.executable, "-m", "wxsim", "--mch-key", "short"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=10,
        check=False,
    )
    assert result.returncode == 2
    assert "mch_key" in result.stderr


def test_trade_managed_and_token_ttl_from_options_and_env(monkeypatch):
    config, _ = parse_args([])
    assert config.trade_managed is True and config.token_ttl == 7200
    monkeypatch.setenv("WXSIM_TRADE_MANAGED", "0")
    monkeypatch.setenv("WXSIM_TOKEN_TTL", "600")
    config, _ = parse_args([])
    assert config.trade_managed is False and config.token_ttl == 600
    config, _ = parse_args(["--trade-managed", "1", "--token-ttl", "30"])
    assert config.trade_managed is True and config.token_ttl == 30


@pytest.mark.parametrize(
    ("argv", "env", "message"),
    [([], {"WXSIM_TRADE_MANAGED": "yes"}, "must be 1 or 0"),  # a bad env default too
     (["--trade-managed", "2"], {}, "must be 1 or 0"),
     (["--token-ttl", "0"], {}, "token_ttl")],
)
def test_bad_trade_managed_or_token_ttl_is_a_usage_error(monkeypatch, capsys, argv, env, message):
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(SystemExit) as exited:
        parse_args(argv)
    assert exited.value.code == 2 and message in capsys.readouterr().err
