"""Generated planners are kept between runs next to a SQLite state (``<state dir>/cache``): the next
process loads them instead of compiling them again, so a small run (a few edits) takes the generated
planner too. A file that is damaged or from another Python only costs a compile, never a wrong plan."""

from __future__ import annotations

import glob
import os
import sys

import pytest

import engine.sync.plan as plan
from tests.sync.test_engine import desk, seed


@pytest.fixture
def fresh_process(monkeypatch):
    """As if each run were a new process: no code object kept in memory between runs; counts compiles."""
    compiled: list[str] = []
    real = compile

    def counting(source, name, mode, *a, **kw):
        compiled.append(name)
        return real(source, name, mode, *a, **kw)

    monkeypatch.setattr(plan, "compile", counting, raising=False)

    def forget():
        plan._CODE.clear()
        compiled.clear()
        return compiled

    forget()
    yield forget
    plan._CODE.clear()


def _cache_files(tmp_path):
    return sorted(glob.glob(str(tmp_path / "cache" / "plan-*.code")))


def _edit(app, n, word):
    for rid in sorted(app.all("contacts"))[:n]:
        app.edit("contacts", rid, lastName=f"{word}{rid}")


def test_a_small_run_after_the_first_loads_the_planners_the_first_compiled(sync, apps, fresh_process, tmp_path,
                                                                           monkeypatch):
    left, right = apps
    seed(left, "contacts", 300, desk)
    assert sync().ok
    files = _cache_files(tmp_path)
    assert files, "the first sync keeps its generated planners next to the state"
    assert all(os.stat(f).st_mode & 0o077 == 0 for f in files)

    compiled = fresh_process()
    general = []
    slow = plan._plan_record
    monkeypatch.setattr(plan, "_plan_record", lambda *a, **kw: general.append(1) or slow(*a, **kw))
    _edit(left, 150, "Edited")  # fewer records than COMPILE_AFTER: compiling would not repay itself
    rep = sync()
    assert rep.ok and rep.writes == 150
    assert compiled == []  # the first run compiled every planner, the edits' too, and kept them
    assert general == []  # the generated planner took every edit: loading it costs less than they save
    assert {r["Last_Name"] for r in right.all("Contacts").values()} >= {f"Edited{rid}" for rid in
                                                                         sorted(left.all("contacts"))[:150]}

    compiled = fresh_process()
    _edit(left, 150, "Again")
    rep = sync()
    assert rep.ok and rep.writes == 150
    assert compiled == []  # every planner this run needed was on disk


def test_a_damaged_cache_file_is_compiled_again_and_rewritten(sync, apps, fresh_process, tmp_path):
    left, right = apps
    seed(left, "contacts", 300, desk)
    assert sync().ok
    files = _cache_files(tmp_path)
    for f in files:
        with open(f, "r+b") as fh:
            fh.seek(40)
            fh.write(b"\x00garbage\xff" * 8)
    with open(files[0], "wb") as fh:
        fh.truncate(0)

    compiled = fresh_process()
    _edit(left, 150, "Edited")
    rep = sync()
    assert rep.ok and rep.writes == 150
    assert compiled  # the damaged files were misses
    got = right.all("Contacts")
    assert sum(1 for r in got.values() if str(r["Last_Name"]).startswith("Edited")) == 150
    assert len(got) == 300

    compiled = fresh_process()
    _edit(left, 150, "Again")
    assert sync().writes == 150
    assert compiled == []  # rewritten whole by the run that missed them


def test_a_state_directory_that_cannot_be_written_only_costs_a_compile(sync, apps, fresh_process, tmp_path):
    left, right = apps
    seed(left, "contacts", 300, desk)
    (tmp_path / "cache").write_text("not a directory")
    assert sync().ok
    compiled = fresh_process()
    _edit(left, 150, "Edited")
    assert sync().writes == 150
    assert compiled and len(right.all("Contacts")) == 300


def test_a_planner_kept_by_another_python_or_under_another_name_is_not_taken(tmp_path, fresh_process, monkeypatch):
    source = "def f():\n    return 1\n"
    plan._code(source, "<plan a left>", str(tmp_path))
    compiled = fresh_process()
    assert plan._code(source, "<plan a left>", str(tmp_path)).co_filename == "<plan a left>"
    assert compiled == []  # kept by this Python under this name: loaded
    assert plan._code(source, "<plan b left>", str(tmp_path)).co_filename == "<plan b left>"
    assert compiled == ["<plan b left>"]  # the same source under another name is another planner
    compiled = fresh_process()
    monkeypatch.setattr(plan, "_MAGIC", plan._MAGIC.replace(sys.implementation.cache_tag.encode(), b"other-311"))
    plan._code(source, "<plan a left>", str(tmp_path))
    assert compiled == ["<plan a left>"]  # another Python's bytecode is never loaded
    assert len(list(tmp_path.glob("plan-*.code"))) == 3


def test_planner_files_unused_for_a_month_go_when_a_new_one_is_written(tmp_path):
    import time

    old = tmp_path / f"plan-{'0' * 40}.code"
    old.write_bytes(b"from an edited spec")
    month = time.time() - 31 * 86400
    os.utime(old, (month, month))
    recent = tmp_path / f"plan-{'1' * 40}.code"
    recent.write_bytes(b"in use")
    killed = tmp_path / f"plan-{'2' * 40}.code.123-456.tmp"  # its writer was killed a day ago
    killed.write_bytes(b"half")
    os.utime(killed, (month, month))
    plan._CODE.clear()
    plan._code("x = 1\n", "<plan new left>", str(tmp_path))
    names = sorted(p.name for p in tmp_path.iterdir())
    assert old.name not in names and killed.name not in names and recent.name in names and len(names) == 2
