"""``python -m wxsim``: options from the environment, stdout line, ready file."""

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import requests

from tests.wxsim.client import wait_until

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
