import subprocess
import sys
from pathlib import Path

import payments.wxpay

REPO_ROOT = Path(__file__).resolve().parents[2]


def test_package_imports_without_django():
    # A fresh interpreter: this test process has Django loaded by pytest-django already.
    code = "import sys, payments.wxpay; assert 'django' not in sys.modules, 'django imported'"
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr


def test_package_exports_its_public_interface():
    for name in payments.wxpay.__all__:
        assert hasattr(payments.wxpay, name), name
    for name in ("WxPayClient", "WxPayConfig", "sign", "verify", "from_xml", "to_xml"):
        assert name in payments.wxpay.__all__
