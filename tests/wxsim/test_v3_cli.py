"""``python -m wxsim`` as another shop's v3 sandbox: options and environment, the files it
writes for the shop, and a shop configured from those files alone."""

# A bare §n in this file is a section of docs/protocol/wechat-pay-v3.md.

import ast
import json
import os
import shutil
import signal
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from tests.wx_v3 import new_rsa_key, pem_of, private_pem, self_signed_certificate, utc
from tests.wxsim.client import wait_until
from wechat.pay_v3 import KeyRing, WxPayV3Client, WxPayV3Config, load_private_key
from wxsim.__main__ import parse_all
from wxsim.config import DEMO_APIV3_KEY

ROOT = Path(__file__).resolve().parents[2]
V3_ENV = ("WXSIM_V3_KEYS", "WXSIM_V3_DIR", "WXSIM_APIV3_KEY", "WXSIM_V3_MERCHANT_KEY",
          "WXSIM_V3_MERCHANT_SERIAL")


@pytest.fixture(autouse=True)
def _no_v3_env(monkeypatch):
    for name in V3_ENV:
        monkeypatch.delenv(name, raising=False)


def test_v3_defaults_and_environment(monkeypatch, tmp_path):
    config, _, folder = parse_all([])
    assert (config.v3_keys, config.apiv3_key, folder) == ("public-key", DEMO_APIV3_KEY, "")
    assert config.v3_merchant_key == "" and config.v3_merchant_serial == ""
    monkeypatch.setenv("WXSIM_V3_KEYS", "both")
    monkeypatch.setenv("WXSIM_V3_DIR", str(tmp_path))
    monkeypatch.setenv("WXSIM_APIV3_KEY", "k" * 32)
    monkeypatch.setenv("WXSIM_V3_MERCHANT_SERIAL", "ABC123")
    config, _, folder = parse_all([])
    assert (config.v3_keys, config.apiv3_key, folder) == ("both", "k" * 32, str(tmp_path))
    assert config.v3_merchant_serial == "ABC123"
    config, _, _ = parse_all(["--v3-keys", "certificate"])
    assert config.v3_keys == "certificate"


@pytest.mark.parametrize(
    ("argv", "env", "message"),
    [([], {"WXSIM_V3_KEYS": "rsa"}, "must be one of"),
     (["--v3-keys", "pem"], {}, "must be one of"),
     (["--apiv3-key", "short"], {}, "apiv3_key"),
     (["--v3-merchant-serial", "not-hex"], {}, "v3_merchant_serial")],
)
def test_bad_v3_options_are_usage_errors(monkeypatch, capsys, argv, env, message):
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(SystemExit) as exited:
        parse_all(argv)
    assert exited.value.code == 2 and message in capsys.readouterr().err


def run(argv: list[str], tmp_path: Path) -> tuple[subprocess.Popen, str, list[str]]:
    """Start the simulator; (process, base URL, its first two stdout lines)."""
    ready = tmp_path / "wxsim.url"
    process = subprocess.Popen(
        [sys.executable, "-m", "wxsim", "--ready-file", str(ready), "--retry-scale", "0.01",
         *argv],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    lines = [process.stdout.readline().strip(), process.stdout.readline().strip()]
    base_url = wait_until(lambda: ready.exists() and ready.read_text().strip(), timeout=20)
    return process, base_url, lines


def stop(process: subprocess.Popen) -> None:
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=10) == 0


def test_a_shop_configured_from_the_written_files_alone(tmp_path):
    folder = tmp_path / "v3"
    process, base_url, lines = run(["--v3-dir", str(folder), "--v3-keys", "both"], tmp_path)
    try:
        assert lines[1] == f"wxsim v3 files for the shop in {folder} (shop.env, wxsim-v3.json)"
        index = json.loads((folder / "wxsim-v3.json").read_text())
        assert index["base_url"] == base_url and index["mode"] == "both"
        for secret in ("apiclient_key.pem", "apiv3_key.txt", "shop.env", "wxsim-v3.json"):
            assert stat.S_IMODE((folder / secret).stat().st_mode) == 0o600, secret
        env = dict(line.split("=", 1) for line in (folder / "shop.env").read_text().splitlines()
                   if not line.startswith("#"))
        assert env["WECHAT_PAY_VERSION"] == "v3" and env["WECHAT_PAY_API_BASE"] == base_url
        assert env["WECHAT_MCH_PRIVATE_KEY_PATH"] == str(folder / "apiclient_key.pem")
        assert env["WECHAT_PAY_PUBLIC_KEY_ID"] == (
            (folder / "wechatpay_pub_key_id.txt").read_text().strip())
        assert env["WECHAT_MCH_CERT_SERIAL"] == (
            (folder / "apiclient_serial.txt").read_text().strip())

        shop = WxPayV3Client(WxPayV3Config(
            appid=env["WECHAT_APPID"], mchid=env["WECHAT_MCH_ID"],
            merchant_serial_no=env["WECHAT_MCH_CERT_SERIAL"],
            private_key=load_private_key(Path(env["WECHAT_MCH_PRIVATE_KEY_PATH"]).read_bytes()),
            apiv3_key=env["WECHAT_API_V3_KEY"],
            keyring=KeyRing.from_pem(
                public_key_pem=Path(env["WECHAT_PAY_PUBLIC_KEY_PATH"]).read_bytes(),
                public_key_id=env["WECHAT_PAY_PUBLIC_KEY_ID"],
                certificate_pems=[(folder / "wechatpay_platform_cert.pem").read_bytes()]),
            api_base=env["WECHAT_PAY_API_BASE"],
        ))
        prepay_id = shop.jsapi_prepay(out_trade_no="T20250101000001", description="测试",
                                      total=1, openid="oUpF8uMuAJO_M2pxb1Q9zNjWeS6o",
                                      notify_url="http://127.0.0.1:9/n").prepay_id
        paid = requests.post(base_url + "/sim/pay",
                             json={"payment": shop.jsapi_params(prepay_id)}, timeout=5)
        assert paid.status_code == 200, paid.text
        assert shop.order_query(out_trade_no="T20250101000001").is_paid
        shop.close()
    finally:
        stop(process)


def test_certificate_mode_files_leave_out_the_public_key(tmp_path):
    folder = tmp_path / "v3"
    process, _, _ = run(["--v3-dir", str(folder), "--v3-keys", "certificate"], tmp_path)
    try:
        env = (folder / "shop.env").read_text()
        assert "WECHAT_PAY_PUBLIC_KEY" not in env and "WECHAT_API_V3_KEY=" in env
    finally:
        stop(process)


def test_merchant_certificate_gives_key_and_serial(tmp_path):
    key = new_rsa_key()
    serial = 0x3775B6A45ACD588826D15E583A95F5DD2C1E4F7A
    cert = self_signed_certificate(key, serial, utc(2024, 1, 1), utc(2034, 1, 1))
    pem = tmp_path / "apiclient_cert.pem"
    pem.write_text(pem_of(cert))
    folder = tmp_path / "v3"
    process, _, _ = run(["--v3-dir", str(folder), "--v3-merchant-key", str(pem)], tmp_path)
    try:
        index = json.loads((folder / "wxsim-v3.json").read_text())
        assert index["merchant_serial"] == "3775B6A45ACD588826D15E583A95F5DD2C1E4F7A"
        assert index["merchant_private_key_path"] is None
        assert not (folder / "apiclient_key.pem").exists()  # the merchant keeps its own
    finally:
        stop(process)


def test_default_folder_is_a_new_temp_dir(tmp_path):
    process, _, lines = run([], tmp_path)
    folder = Path(lines[1].split(" in ", 1)[1].split(" (", 1)[0])
    try:
        assert folder.name.startswith("wxsim-v3-") and (folder / "wxsim-v3.json").exists()
    finally:
        stop(process)
        shutil.rmtree(folder)


@pytest.mark.parametrize("serial", [[], ["--v3-merchant-serial", "ABCDEF"]])
def test_unusable_merchant_key_is_a_usage_error(tmp_path, serial):
    key_file = tmp_path / "apiclient_key.pem"
    key_file.write_text(private_pem(new_rsa_key()) if not serial else "not a key\n")
    result = subprocess.run(
        [sys.executable, "-m", "wxsim", "--v3-merchant-key", str(key_file), *serial],
        cwd=ROOT, capture_output=True, text=True, timeout=20,
        env={k: v for k, v in os.environ.items() if k not in V3_ENV},
    )
    assert result.returncode == 2
    expected = "not an unencrypted PEM" if serial else "serial"
    assert expected in result.stderr
    assert "not a key" not in result.stderr  # the file's content is never echoed


def test_the_simulator_shares_no_code_with_the_shop():
    """Its own signing and encryption, so a shop bug fails end to end instead of agreeing
    with itself: nothing under wxsim/ imports the shop's packages."""
    shop = {"wechat", "core", "accounts", "orders", "payments", "shipping", "shopsite"}
    for path in (ROOT / "wxsim").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            for name in names:
                assert name.split(".")[0] not in shop, f"{path.name} imports {name}"
