"""mutation/mutate.py, the tool CI relies on to keep the money path's mutation score: how it
names a mutant across mutmut's renumbering, and what it accepts in mutation/equivalents.toml.
(Running mutmut itself is `make mutate`, not a test.)"""

import importlib.util
import re
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def load_tool():
    spec = importlib.util.spec_from_file_location("mutate", ROOT / "mutation" / "mutate.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


mutate = load_tool()

DIFF = """--- payments/v3client.py
+++ payments/v3client.py
@@ -1,5 +1,5 @@
 def _may_download() -> bool:
     \"\"\"Whether a refresh may ask WeChat now.\"\"\"
-    return cache.add(ATTEMPT_KEY, _MARK, REFRESH_MIN_INTERVAL)
+    return cache.add(ATTEMPT_KEY, None, REFRESH_MIN_INTERVAL)
"""


@pytest.mark.parametrize(
    "mutant, function",
    [
        ("payments.v3client.x__download__mutmut_3", "_download"),
        ("payments.notify.x_notification_receive__mutmut_12", "notification_receive"),
        ("wechat.pay_v3.verifying.xǁKeyRingǁ__init____mutmut_28", "KeyRing.__init__"),
        ("wechat.pay_v3.results.xǁRefundǁfrom_json__mutmut_24", "Refund.from_json"),
    ],
)
def test_a_mutant_is_named_by_the_function_the_source_names(mutant, function):
    assert mutate.function_of(mutant) == function


def test_a_mutant_is_named_by_what_it_takes_out_and_puts_in_not_by_its_number():
    assert mutate.change_of(DIFF) == (
        "return cache.add(ATTEMPT_KEY, _MARK, REFRESH_MIN_INTERVAL)",
        "return cache.add(ATTEMPT_KEY, None, REFRESH_MIN_INTERVAL)",
    )


def test_a_mutant_that_deletes_a_line_puts_in_nothing():
    diff = "--- a.py\n+++ a.py\n@@ -1,2 +1,1 @@\n def f():\n-    g()\n"

    assert mutate.change_of(diff) == ("g()", "")


def test_an_equivalent_without_its_reason_stops_the_run(tmp_path, monkeypatch):
    listed = tmp_path / "equivalents.toml"
    listed.write_text(
        "[[equivalent]]\nfile = 'payments/notify.py'\nfunction = '_store'\n"
        "was = 'a'\nbecomes = 'b'\nwhy = '  '\n"
    )
    monkeypatch.setattr(mutate, "EQUIVALENTS", listed)

    with pytest.raises(SystemExit, match="lacks \\['why'\\]"):
        mutate.equivalents()


def test_every_listed_equivalent_names_a_money_path_function_and_a_line_it_has():
    """A typo would leave an entry that matches nothing: caught here, not after an hour of
    mutation."""
    with open(ROOT / "mutation" / "equivalents.toml", "rb") as f:
        entries = tomllib.load(f)["equivalent"]
    money_path = mutate.money_path()
    for entry in entries:
        assert entry["file"] in money_path, entry
        source = (ROOT / entry["file"]).read_text()
        name = entry["function"].rpartition(".")[2]
        assert re.search(rf"^\s*def {re.escape(name)}\(", source, re.MULTILINE), entry
        squeezed = " ".join(source.split())
        for line in entry["was"].splitlines():
            assert " ".join(line.split()) in squeezed, entry
