import subprocess
import sys
from pathlib import Path

import wechat.pay_v2

REPO_ROOT = Path(__file__).resolve().parents[3]


def test_package_imports_without_django():
    # A fresh interpreter: this test process has Django loaded by pytest-django already.
    code = (
        "import sys, wechat.pay_v2; assert 'django' not in sys.modules, 'django imported'; "
        "assert wechat.pay_v2.__file__.endswith('wechat/pay_v2/__init__.py'), 'not the package'; "
        "assert '/tests/' not in wechat.pay_v2.__file__, 'the tests folder, not the package'"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr


def test_package_exports_its_public_interface():
    for name in wechat.pay_v2.__all__:
        assert hasattr(wechat.pay_v2, name), name
    for name in ("WxPayClient", "WxPayConfig", "sign", "verify", "from_xml", "to_xml"):
        assert name in wechat.pay_v2.__all__
