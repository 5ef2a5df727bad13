"""Mutation testing of the money path with mutmut: `make mutate`, `make mutate-changed`.

    python mutation/mutate.py                  every money-path file
    python mutation/mutate.py --changed        only the money-path files whose content is not
                                               the one mutation/baseline records (CI)
    python mutation/mutate.py FILE ...         only these money-path files

The packages of WeChat's protocols (wechat/pay_v2, wechat/pay_v3, wechat/miniprogram) and the
shipping app are measured with their own tests only (OWN_TESTS), each in a mutmut run of its
own.

Every run that passes records, in mutation/baseline, each file it measured with the git blob
hash of the content it measured and its score, one line per file; a file edited while the run
went on is not recorded. So CI mutates a file again exactly when its content changed since it
last passed (or it never did), whichever commit that was in.

The money path is `[tool.mutmut] only_mutate` in pyproject.toml: the one list, read here.
Each file must keep a score (killed ÷ mutants) of at least THRESHOLD percent, else the
run fails and names every survivor with its diff. Equivalent mutants (that cannot change
behaviour) are not counted: each is listed once, with why, in mutation/equivalents.toml (an
entry that no longer matches a survivor fails the run until removed), or, where no mutant of
a line can matter, its line carries `# pragma: no mutate` with the reason
(docs/RELIABILITY.md).

mutmut copies the project into mutants/ (git-ignored), rewrites the listed files there with
every mutant behind a switch, and for each mutant forks a worker that runs only the tests
that call the mutated function. `--max-children` (default 1, or MUTATE_CHILDREN) is how many
workers run at once.
"""

import argparse
import os
import shutil
import signal
import subprocess
import sys
import time
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BASELINE = ROOT / "mutation" / "baseline"
EQUIVALENTS = ROOT / "mutation" / "equivalents.toml"
THRESHOLD = 95.0
MUTMUT_VERSION = "3.8.1"

# mutmut leaves out every decorated function but @staticmethod/@classmethod, because some
# decorators run side effects or cache results when its trampoline copies the function
# (github.com/boxed/mutmut/issues/387). On the money path that would hide payment_prepare,
# the notify entry points, refund_submit, order_close, order_reconcile and the order
# transaction. These two are safe: sensitive_variables() only marks frames for error
# reports, so every copy keeps it (the copy's frame is the one holding the secrets);
# transaction.atomic must apply once, so only the trampoline keeps it (on the copies it
# would add a savepoint, and the query-count tests would count it). Never lru_cache (a
# cached answer would hide the mutant) or property (the trampoline needs a function).
SAFE_DECORATORS = frozenset({"sensitive_variables", "atomic"})
ONCE_DECORATORS = frozenset({"atomic"})


def _decorator_name(expression) -> str:
    """`sensitive_variables` for `@sensitive_variables()`, `atomic` for `@transaction.atomic`."""
    import libcst as cst

    while isinstance(expression, cst.Call):
        expression = expression.func
    if isinstance(expression, cst.Attribute):
        return expression.attr.value
    return getattr(expression, "value", "")


def _mutate_safely_decorated_functions() -> None:
    """Let mutmut mutate functions whose decorators are all in SAFE_DECORATORS, applying
    the ONCE_DECORATORS on the trampoline only."""
    import libcst as cst
    from libcst.metadata import PositionProvider
    from mutmut.mutation import file_mutation
    from mutmut.mutation.file_mutation import MutationVisitor

    skip = MutationVisitor._skip_node_and_children

    def skip_unless_safely_decorated(self, node):
        if not (
            isinstance(node, cst.FunctionDef)
            and node.decorators
            and all(_decorator_name(d.decorator) in SAFE_DECORATORS for d in node.decorators)
        ):
            return skip(self, node)
        # `# pragma: no mutate block` on the def line still leaves the whole function out.
        position = self.get_metadata(PositionProvider, node, None)
        if position and position.start.line in self._ignored_node_lines:
            self.ignored_functions.add(node.name.value)
            return True
        # Judged as the same function without its decorators; the decorators themselves
        # are still never mutated (they run at import).
        return skip(self, node.with_changes(decorators=()))

    MutationVisitor._skip_node_and_children = skip_unless_safely_decorated

    arrange = file_mutation.function_trampoline_arrangement

    def arrange_once_decorators_on_the_trampoline(function, mutants, class_name):
        declarations, nodes, assignments, names = arrange(function, mutants, class_name)
        kept = [
            d for d in function.decorators if _decorator_name(d.decorator) not in ONCE_DECORATORS
        ]
        if len(kept) != len(function.decorators):
            # nodes[0] is the trampoline; the rest are the original's copy and the mutants.
            nodes = [nodes[0], *(node.with_changes(decorators=kept) for node in nodes[1:])]
        return declarations, nodes, assignments, names

    file_mutation.function_trampoline_arrangement = arrange_once_decorators_on_the_trampoline


def _one_test_database_per_worker() -> dict[str, str]:
    """Each mutant's worker gets a test database of its own, copied from the first one.

    `--reuse-db` (pyproject.toml) keeps the SQLite test database that mutmut's first,
    in-process test runs migrate (the template), so a worker forked for a mutant starts in
    half a second instead of migrating again. Each worker gets a fresh copy: workers running
    side by side never share a file, and rows left by a worker killed mid-test never reach
    the next one. Without a template a worker migrates a database of its own.
    """
    state: dict[str, str] = {}

    def before() -> None:
        django_db = sys.modules.get("django.db")
        if django_db is None or "template" in state:
            return
        name = django_db.connections["default"].settings_dict.get("TEST", {}).get("NAME") or ""
        if name.endswith(".sqlite3"):
            state["template"] = name

    def in_worker() -> None:
        template = state.get("template")
        if template:
            own = f"{template.removesuffix('.sqlite3')}-{os.getpid()}.sqlite3"
            if os.path.exists(template):
                shutil.copyfile(template, own)
            connections = sys.modules["django.db"].connections
            connections["default"].settings_dict["TEST"]["NAME"] = own

    def in_mutmut() -> None:
        template = state.get("template")
        if template:
            _remove_worker_databases(template, only_finished=True)

    os.register_at_fork(before=before, after_in_child=in_worker, after_in_parent=in_mutmut)
    return state


def _test_database() -> str:
    """This process's SQLite test database, if the tests got as far as making one (when
    they fail before any worker is forked, the fork hook never learns its name)."""
    django_db = sys.modules.get("django.db")
    if django_db is None:
        return ""
    try:
        name = django_db.connections["default"].settings_dict.get("TEST", {}).get("NAME")
    except Exception:  # settings never loaded: no database either
        return ""
    name = name or ""
    return name if name.endswith(f"-{os.getpid()}.sqlite3") else ""


def _remove_worker_databases(template: str, *, only_finished: bool) -> None:
    folder, stem = Path(template).parent, Path(template).stem
    for own in [*folder.glob(f"{stem}-*.sqlite3"), *folder.glob(f"{stem}-*.sqlite3-journal")]:
        pid = int(own.name.removesuffix("-journal").removesuffix(".sqlite3").rpartition("-")[2])
        if only_finished:
            try:
                os.kill(pid, 0)
                continue  # still running
            except ProcessLookupError:
                pass
        own.unlink(missing_ok=True)


def _quiet_progress() -> None:
    """mutmut redraws a spinner many times a second; a log gets a line a minute."""
    import mutmut.__main__
    import mutmut.stats

    last = [0.0]

    def print_status(text: str, *, force_output: bool = False) -> None:
        now = time.monotonic()
        if force_output or now - last[0] >= 60:
            last[0] = now
            print(f"  {text}", file=sys.__stdout__, flush=True)

    mutmut.__main__.print_status = print_status
    mutmut.stats.print_status = print_status


def money_path() -> list[str]:
    with open(ROOT / "pyproject.toml", "rb") as f:
        return list(tomllib.load(f)["tool"]["mutmut"]["only_mutate"])


def git(*args: str) -> str:
    # git from PATH, with fixed arguments and a commit hash read from our own file.
    return subprocess.run(  # noqa: S603
        ["git", *args],  # noqa: S607
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()


def blob(path: str) -> str:
    """The git blob hash of the file's content as it is on disk (committed or not)."""
    return git("hash-object", "--", path)


def recorded() -> dict[str, str]:
    """mutation/baseline: the content (blob hash) of each money-path file that last passed.
    A file without a line has not passed since the baseline was kept this way."""
    lines = BASELINE.read_text().splitlines() if BASELINE.exists() else []
    return {
        fields[0]: fields[1]
        for fields in (line.split() for line in lines if not line.startswith("#"))
        if len(fields) == 3
    }


def changed_since_baseline(files: list[str]) -> list[str]:
    """The money-path files whose content is not the one that last passed (or never did)."""
    passed = recorded()
    return [f for f in files if passed.get(f) != blob(f)]


def record(rows: list[dict], blobs: dict[str, str]) -> None:
    """Record the files of a passing run whose content is still the one measured."""
    lines = BASELINE.read_text().splitlines() if BASELINE.exists() else []
    kept = {
        fields[0]: (fields[1], fields[2])
        for fields in (line.split() for line in lines if not line.startswith("#"))
        if len(fields) == 3
    }
    for row in rows:
        if blob(row["path"]) == blobs[row["path"]]:
            kept[row["path"]] = (blobs[row["path"]], f"{row['score']:.1f}")
        else:
            print(f"mutate: {row['path']} changed during the run: not recorded")
    every = money_path()
    BASELINE.write_text(
        "# Money-path files as they last passed `make mutate` (mutation/mutate.py):\n"
        "# path, git blob hash of the content measured, score (%)\n"
        + "".join(
            f"{path} {sha} {score}\n"
            for path, (sha, score) in sorted(kept.items())
            if path in every
        )
    )


# The Django-free protocol packages are measured with their own tests only: they are what
# must pin their rules (the shop's tests reach them through every notify, which made each of
# their mutants run hundreds of Django tests), and a score from fewer tests is no higher
# than the whole suite's would be. The shipping app likewise with tests/shipping (the
# payment tests never reach it). Everything else: [tool.mutmut]'s test selection.
OWN_TESTS = {
    "wechat/pay_v2/": ["tests/wechat/pay_v2"],
    "wechat/pay_v3/": ["tests/wechat/pay_v3"],
    "wechat/miniprogram/": ["tests/wechat/miniprogram"],
    "shipping/": ["tests/shipping"],
    "wechat/bills.py": [
        "tests/wechat/test_bills.py",
        "tests/wechat/test_bills_mutants.py",
        "tests/wechat/pay_v2/test_bills.py",
    ],
}


def own_tests(path: str) -> list[str] | None:
    return next((tests for prefix, tests in OWN_TESTS.items() if path.startswith(prefix)), None)


def by_tests(files: list[str]) -> list[list[str]]:
    """The files grouped by the tests that measure them, in the money path's order."""
    groups: dict[tuple[str, ...], list[str]] = {}
    for path in files:
        groups.setdefault(tuple(own_tests(path) or ()), []).append(path)
    return list(groups.values())


def run_mutmut(files: list[str], max_children: int) -> None:
    import mutmut
    from mutmut.__main__ import cli
    from mutmut.configuration import config

    if mutmut.__version__ != MUTMUT_VERSION:
        sys.exit(
            f"mutate: mutmut {mutmut.__version__} is installed, this script knows {MUTMUT_VERSION} "
            "(requirements.txt): check _mutate_safely_decorated_functions against it"
        )
    _mutate_safely_decorated_functions()
    _quiet_progress()
    databases = _one_test_database_per_worker()
    config().only_mutate = files
    tests = own_tests(files[0])
    if tests:
        config().pytest_add_cli_args_test_selection = tests
    # A fresh copy every run: results that decide CI and the baseline never come from a
    # stale mutants/ tree.
    shutil.rmtree(ROOT / "mutants", ignore_errors=True)
    try:
        cli.main(["run", "--max-children", str(max_children)], standalone_mode=False)
    except SystemExit as exc:
        if exc.code:
            sys.exit(f"mutate: mutmut stopped (exit {exc.code}): the tests fail without mutants?")
    finally:
        template = databases.get("template") or _test_database()
        if template:
            _remove_worker_databases(template, only_finished=False)
            Path(template).unlink(missing_ok=True)
            Path(template + "-journal").unlink(missing_ok=True)


def function_of(mutant: str) -> str:
    """The function a mutant changes, as the source names it:
    ``payments.v3client.x__download__mutmut_3`` → ``_download``,
    ``wechat.pay_v3.verifying.xǁKeyRingǁ__init____mutmut_28`` → ``KeyRing.__init__``."""
    mangled = mutant.rpartition(".")[2].rpartition("__mutmut_")[0]
    if mangled.startswith("xǁ"):
        return ".".join(mangled[2:].split("ǁ"))
    return mangled.removeprefix("x_")


def change_of(diff: str) -> tuple[str, str]:
    """What a mutant's diff takes out and puts in: its changed lines, stripped, each side
    joined by newlines. Unlike mutmut's numbers, this names the mutant across edits of the
    rest of the function."""
    lines = [line for line in diff.splitlines() if not line.startswith(("---", "+++"))]
    out = "\n".join(line[1:].strip() for line in lines if line.startswith("-"))
    put_in = "\n".join(line[1:].strip() for line in lines if line.startswith("+"))
    return out, put_in


def equivalents() -> list[dict]:
    """mutation/equivalents.toml: the surviving mutants that cannot change behaviour, each
    with why (file, function, was, becomes, why)."""
    if not EQUIVALENTS.exists():
        return []
    with open(EQUIVALENTS, "rb") as f:
        entries = tomllib.load(f).get("equivalent", [])
    for entry in entries:
        missing = {"file", "function", "was", "becomes", "why"} - entry.keys()
        if missing or not entry["why"].strip():
            lacks = sorted(missing) or ["why"]
            sys.exit(f"mutate: {EQUIVALENTS.name}: an entry lacks {lacks}: {entry}")
    return entries


def scores(files: list[str]) -> list[dict]:
    """Per file: mutants, killed, the survivors listed as equivalent (not counted), the
    others (missed), and the listed equivalents that no longer survive (stale)."""
    from mutmut.mutation.data import SourceFileMutationData
    from mutmut.mutation.diff_apply import get_diff_for_mutant
    from mutmut.stats import status_by_exit_code

    listed = equivalents()
    rows = []
    for path in files:
        data = SourceFileMutationData(path=Path(path))
        data.load()
        by_status: dict[str, list[str]] = {}
        for name, code in data.exit_code_by_key.items():
            by_status.setdefault(status_by_exit_code[code], []).append(name)
        # survived, no tests, suspicious, segfault: nothing caught them.
        survivors = sorted(
            name
            for status, names in by_status.items()
            if status not in ("killed", "timeout", "not checked")
            for name in names
        )
        mine = [entry for entry in listed if entry["file"] == path]
        used: set[int] = set()
        equivalent, missed = [], []
        for name in survivors:
            was, becomes = change_of(get_diff_for_mutant(name, path=path))
            match = next(
                (
                    i
                    for i, entry in enumerate(mine)
                    if (entry["function"], entry["was"].strip(), entry["becomes"].strip())
                    == (function_of(name), was, becomes)
                ),
                None,
            )
            if match is None:
                missed.append(name)
            else:
                used.add(match)
                equivalent.append(name)
        counted = len(data.exit_code_by_key) - len(equivalent)
        # mutmut's own score: a timeout is a kill (the mutant hung the tests).
        killed = len(by_status.get("killed", [])) + len(by_status.get("timeout", []))
        rows.append(
            {
                "path": path,
                "total": len(data.exit_code_by_key),
                "equivalent": equivalent,
                "killed": killed,
                "score": 100.0 * killed / counted if counted else 100.0,
                "not_checked": by_status.get("not checked", []),
                "missed": missed,
                "stale": [entry for i, entry in enumerate(mine) if i not in used],
            }
        )
    return rows


def report(rows: list[dict]) -> bool:
    from mutmut.mutation.diff_apply import get_diff_for_mutant

    ok = True
    print(f"\n{'file':40} {'mutants':>8} {'equiv.':>7} {'killed':>7} {'score':>7}")
    for row in rows:
        print(
            f"{row['path']:40} {row['total']:8} {len(row['equivalent']):7} {row['killed']:7} "
            f"{row['score']:6.1f}%"
        )
    for row in rows:
        if row["not_checked"]:
            ok = False
            print(f"\n{row['path']}: {len(row['not_checked'])} mutants were not run")
        if row["score"] < THRESHOLD:
            ok = False
            print(f"\n{row['path']}: {row['score']:.1f}% is below {THRESHOLD:.0f}%")
        for entry in row["stale"]:
            # Killed now, or the line is gone: either way the list no longer tells the truth.
            ok = False
            print(
                f"\n{row['path']}: listed as equivalent in {EQUIVALENTS.name} but no longer "
                f"surviving, remove it: {entry['function']}: {entry['was']!r} -> "
                f"{entry['becomes']!r}"
            )
        for name in row["missed"]:
            print(f"\n--- survived: {name}")
            print(get_diff_for_mutant(name, path=row["path"]))
    return ok


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="*", help="money-path files (default: all of them)")
    parser.add_argument(
        "--changed", action="store_true", help="only the files changed since mutation/baseline"
    )
    parser.add_argument(
        "--max-children", type=int, default=int(os.environ.get("MUTATE_CHILDREN", "1"))
    )
    args = parser.parse_args()
    os.chdir(ROOT)
    # Stopped from outside (CI's time limit, Ctrl-C's cousin): still clean up (finally).
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))

    every = money_path()
    unknown = [f for f in args.files if f not in every]
    if unknown:
        sys.exit(f"mutate: not on the money path ([tool.mutmut] only_mutate): {' '.join(unknown)}")
    files = args.files or every
    if args.changed:
        files = changed_since_baseline(files)
        if not files:
            print("mutate: every money-path file is as it last passed: nothing to mutate")
            return

    groups = by_tests(files)
    if len(groups) > 1:
        # One mutmut run per group of tests, each in a process of its own (mutmut keeps
        # its configuration and hooks for the life of the process); each records its own.
        failed = []
        for group in groups:
            command = [sys.executable, __file__, "--max-children", str(args.max_children)]
            if subprocess.run([*command, *group], check=False).returncode:  # noqa: S603
                failed += group
        if failed:
            sys.exit(f"mutate: FAILED: {' '.join(failed)}")
        return

    print("mutate:", " ".join(files))
    # The content measured: mutmut copies the files now.
    blobs = {path: blob(path) for path in files}
    run_mutmut(files, args.max_children)
    rows = scores(files)
    ok = report(rows)
    # Each file that passed is recorded, whatever the others did.
    passed = [
        row
        for row in rows
        if row["score"] >= THRESHOLD and not row["not_checked"] and not row["stale"]
    ]
    record(passed, blobs)
    if passed:
        print(
            "mutate: recorded in mutation/baseline (CI mutates a file again once it changes):",
            " ".join(row["path"] for row in passed),
        )
    if not ok:
        sys.exit(f"mutate: FAILED: every money-path file needs at least {THRESHOLD:.0f}%")
    print(f"\nmutate: every file at or above {THRESHOLD:.0f}%")


if __name__ == "__main__":
    main()
