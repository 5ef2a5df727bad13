import subprocess
import sys
from pathlib import Path

import wechat.pay_v3

REPO_ROOT = Path(__file__).resolve().parents[3]


def test_package_imports_without_django_or_pay_v2():
    # A fresh interpreter: this test process has Django loaded by pytest-django already.
    code = (
        "import sys, wechat.pay_v3; "
        "assert 'django' not in sys.modules, 'django imported'; "
        "assert 'wechat.pay_v2' not in sys.modules, 'pay_v2 imported'"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr


def test_package_exports_its_public_interface():
    for name in wechat.pay_v3.__all__:
        assert hasattr(wechat.pay_v3, name), name
    for name in (
        "WxPayV3Client",
        "WxPayV3Config",
        "KeyRing",
        "verify_signature",
        "decrypt_resource",
        "parse_notify",
        "WxPayV3Error",
    ):
        assert name in wechat.pay_v3.__all__
