"""Apply: lock, freshness, one transaction, steps in order; pause/resume, destroy, reconcile."""

from __future__ import annotations

import dataclasses

import pytest

from engine import workspace
from engine.errors import LockedError, StalePlanError, StateError, UsageError
from engine.plan.model import Step, load_plan, save_plan
from tests.plan.support import NOW


def _apply(session, paths=(), **kw):
    p = workspace.plan(session, paths, refresh=False)
    return p, workspace.apply_plan(session, p, sync=False, **kw)


def test_apply_records_the_specs_and_the_next_plan_is_empty(session):
    p, result = _apply(session)
    assert result.ok and result.serial == 1
    assert [(r.step.type, r.status) for r in result.results] == [
        ("put_integration", "done"), ("initial_sync", "skipped"), ("initial_sync", "skipped")]
    assert "skipped (--no-sync)" in result.results[1].message
    store = session.store()
    assert [d.name for d in store.list_deployed()] == ["desk-bigin"]
    hist = store.apply_history()
    assert hist[0]["spec_hash"] == p.spec_hash and hist[0]["serial"] == 1 and "@" in hist[0]["who"]
    again = workspace.plan(session, refresh=False)
    assert not again.has_changes and again.empty


def test_editing_one_mapping_plans_exactly_that_change(session, edit_spec):
    _apply(session)
    edit_spec("{left: firstName, right: First_Name}", "{left: cf.cf_nickname, right: First_Name}")
    session.specs(reload=True)
    p = workspace.plan(session, refresh=False)
    assert [(c.address, c.action, c.category) for c in p.changes if c.action != "no-op"] == [
        ("desk-bigin.contacts.field[First_Name]", "update", "data")]
    assert [(s.type, s.module, s.fields) for s in p.steps] == [
        ("put_integration", None, ()), ("backfill", "contacts", ("First_Name",))]


def test_a_plan_made_before_another_apply_is_stale_and_says_what_moved(session, edit_spec):
    old = workspace.plan(session, refresh=False)
    _apply(session)
    with pytest.raises(StalePlanError) as err:
        workspace.apply_plan(session, old, sync=False)
    msg = str(err.value)
    assert "made at state serial 0, the state is now at serial 1" in msg
    assert "changed since: desk-bigin" in msg
    assert "applied at" in msg and "Run plan again" in msg
    assert session.store().serial() == 1
    assert session.store().lock_info() is None  # the refusal released the lock


def test_a_plan_for_another_state_is_refused(session, repo):
    from engine.workspace import open_session

    p = workspace.plan(session, refresh=False)
    with open_session(root=repo, state_url="sqlite:///other.db") as other:
        with pytest.raises(StalePlanError, match="made against another state"):
            workspace.apply_plan(other, p, sync=False)


def test_a_saved_plan_is_refused_when_the_specs_changed(session, repo, edit_spec):
    p = workspace.plan(session, refresh=False)
    save_plan(p, str(repo / "plans" / "x.json"))
    edit_spec("Support and sales share", "Support and sales now share")
    session.specs(reload=True)
    with pytest.raises(StalePlanError, match="the specs changed since the plan"):
        workspace.apply_plan(session, load_plan(str(repo / "plans" / "x.json")), sync=False, check_specs=True)
    assert session.store().serial() == 0


def test_a_saved_plan_round_trips_and_applies(session, repo):
    p = workspace.plan(session, refresh=False)
    save_plan(p, str(repo / "plans" / "x.json"))
    loaded = load_plan(str(repo / "plans" / "x.json"))
    assert loaded == p
    assert workspace.apply_plan(session, loaded, sync=False, check_specs=True).ok


def test_an_edited_plan_file_is_refused(session, repo):
    path = repo / "plans" / "x.json"
    save_plan(workspace.plan(session, refresh=False), str(path))
    path.write_text(path.read_text().replace('"unlink"', '"delete"'))
    with pytest.raises(StateError, match="modified after it was made"):
        load_plan(str(path))


def test_state_steps_commit_all_or_nothing(session):
    p = workspace.plan(session, refresh=False)
    broken = dataclasses.replace(p, steps=p.steps[:1] + (Step("put_integration", "other", payload={}),))
    with pytest.raises(StateError, match="has no spec"):
        workspace.apply_plan(session, broken, sync=False)
    store = session.store()
    assert store.list_deployed() == [] and store.serial() == 0 and store.apply_history() == []
    assert store.lock_info() is None


def test_an_unknown_step_is_refused_before_anything_happens(session):
    p = workspace.plan(session, refresh=False)
    odd = dataclasses.replace(p, steps=p.steps + (Step("initial_synk", "desk-bigin", "contacts"),))
    with pytest.raises(StateError, match='"initial_synk" is unknown to this syncform; did you mean "initial_sync"'):
        workspace.apply_plan(session, odd, sync=False)
    assert session.store().serial() == 0


def test_apply_waits_for_the_lock_then_names_its_holder(session):
    held = session.store().acquire_lock("reconcile")
    p = workspace.plan(session, refresh=False)
    with pytest.raises(LockedError) as err:
        workspace.apply_plan(session, p, sync=False, lock_timeout=0.1)
    assert held.id in str(err.value) and '"reconcile"' in str(err.value)
    assert session.store().list_deployed() == []


def test_pause_survives_an_apply_until_resume(session, edit_spec):
    _apply(session)
    assert workspace.pause(session, "desk-bigin") is True
    assert workspace.pause(session, "desk-bigin") is False
    edit_spec("Support and sales share", "Support and sales now share")
    session.specs(reload=True)
    _, result = _apply(session)
    assert session.store().get_deployed("desk-bigin").paused is True
    assert workspace.resume(session, "desk-bigin") is True
    assert session.store().get_deployed("desk-bigin").paused is False
    assert workspace.resume(session, "desk-bigin") is False


def test_resume_of_an_integration_paused_by_its_spec_says_how(session, edit_spec):
    edit_spec("  left:  {app: zoho_desk", "  paused: true\n  left:  {app: zoho_desk")
    _, result = _apply(session)
    assert [r.step.type for r in result.results] == ["put_integration"]  # paused: no sync steps planned
    with pytest.raises(UsageError, match="paused by its spec"):
        workspace.resume(session, "desk-bigin")


def test_pause_of_an_unknown_integration_suggests_one(session):
    _apply(session)
    with pytest.raises(StateError, match='did you mean "desk-bigin"'):
        workspace.pause(session, "desk-bign")


def test_destroy_forgets_the_integration_and_its_links(session):
    from engine.state.base import Link

    _apply(session)
    store = session.store()
    store.put_links("desk-bigin", "contacts", [Link("l1", "r1")])
    p = workspace.destroy_plan(session, "desk-bigin")
    assert [(c.address, c.action, c.destructive) for c in p.changes][0] == ("desk-bigin", "delete", True)
    assert "records stay in both apps" in p.changes[0].reason
    assert workspace.apply_plan(session, p, sync=False).ok
    assert store.get_deployed("desk-bigin") is None and store.count_links("desk-bigin", "contacts") == 0


def test_reconcile_twice_changes_nothing_the_second_time(session):
    first = list(workspace.reconcile(session, sync=False))
    second = list(workspace.reconcile(session, sync=False))
    assert first[0].result is not None and first[0].result.ok
    assert second[0].result is None and not second[0].plan.has_changes
    assert session.store().serial() == 1


def test_reconcile_prunes_only_when_asked(session, repo):
    list(workspace.reconcile(session, sync=False))
    (repo / "integrations" / "specs.yaml").write_text((repo / "integrations" / "specs.yaml").read_text()
                                                     .split("---\n", 1)[1])  # connections only
    session.specs(reload=True)
    kept = list(workspace.reconcile(session, sync=False))
    assert kept[0].result is None and session.store().get_deployed("desk-bigin") is not None
    assert any("left alone" in n for n in kept[0].plan.notes)
    assert workspace.status(session)["integrations"][0]["sync_status"] == "not-in-specs"
    with pytest.raises(UsageError, match="would remove all 1 deployed \\(desk-bigin\\); refusing"):
        list(workspace.reconcile(session, sync=False, prune=True))
    assert session.store().get_deployed("desk-bigin") is not None
    pruned = list(workspace.reconcile(session, sync=False, prune=True, allow_empty=True))
    assert pruned[0].result.ok and session.store().get_deployed("desk-bigin") is None


def test_reconcile_with_an_interval_rereads_the_specs_each_pass(session, edit_spec):
    sleeps = []

    def sleep(seconds):
        sleeps.append(seconds)
        if len(sleeps) == 1:
            edit_spec("Support and sales share", "Support and sales now share")

    runs = list(workspace.reconcile(session, sync=False, interval=30, max_runs=3, sleep=sleep))
    assert [r.number for r in runs] == [1, 2, 3] and sleeps == [30, 30]
    assert [r.result is not None for r in runs] == [True, True, False]
    assert [c.address for c in runs[1].plan.changes if c.action != "no-op"] == ["desk-bigin.description"]


def test_status_reports_deployed_integrations(session, edit_spec):
    _apply(session)
    st = workspace.status(session)
    (i,) = st["integrations"]
    assert i["sync_status"] == "in-sync"
    edit_spec("Support and sales share", "Support and sales now share")
    assert workspace.status(session)["integrations"][0]["sync_status"] == "out-of-sync"
    edit_spec("apiVersion: syncform/v1\nkind: Integration", "apiVersion: syncform/v1\nkind: Integratoin")
    broken = workspace.status(session)
    assert broken["integrations"][0]["sync_status"] == "unknown" and broken["specs_error"]
    assert i["name"] == "desk-bigin" and [m["name"] for m in i["modules"]] == ["contacts", "products"]
    assert i["modules"][0]["links"] == 0 and i["modules"][0]["last_run"] is None
    with pytest.raises(StateError, match="not deployed"):
        workspace.status(session, "nope")


def test_the_specs_cache_follows_every_edit_and_is_private(session, repo, edit_spec):
    import stat

    from engine.workspace import open_session

    first = workspace.plan(session, refresh=False)
    cache = repo / ".syncform" / "cache" / "specs.json"
    assert stat.S_IMODE(cache.stat().st_mode) == 0o600
    assert stat.S_IMODE(cache.parent.stat().st_mode) == 0o700
    with open_session(root=repo) as fresh:  # a new process would hit the cache: same plan
        assert workspace.plan(fresh, refresh=False).spec_hash == first.spec_hash
        assert len(fresh.warnings) == len(session.warnings) and fresh.warnings
    edit_spec("Support and sales share", "Support and sales now share")
    with open_session(root=repo) as fresh:
        changed = workspace.plan(fresh, refresh=False)
    assert changed.spec_hash != first.spec_hash
    assert changed.steps[0].payload["spec"]["integration"]["description"].startswith("Support and sales now share")


def test_a_reconcile_loop_reports_a_failed_pass_and_goes_on(session):
    held = {"lock": session.store().acquire_lock("apply")}

    def sleep(seconds):
        if "lock" in held:
            session.store().release_lock(held.pop("lock").id)

    runs = list(workspace.reconcile(session, sync=False, interval=5, max_runs=2, sleep=sleep, lock_timeout=0.05))
    assert runs[0].plan is None and "LockedError: state is locked by" in runs[0].error
    assert runs[1].error is None and runs[1].result.ok


def test_without_an_interval_reconcile_errors_are_the_callers(session):
    session.store().acquire_lock("apply")
    with pytest.raises(LockedError):
        list(workspace.reconcile(session, sync=False, lock_timeout=0.05))


def test_reconcile_prune_removes_only_what_left_the_repository(session, repo):
    extra = repo / "integrations" / "extra.yaml"
    extra.write_text("""apiVersion: syncform/v1
kind: Integration
metadata: {name: accounts-oneway}
spec:
  left:  {app: zoho_desk, connection: desk}
  right: {app: bigin, connection: bigin}
  modules:
    - name: accounts
      left: accounts
      right: Accounts
      direction: left-to-right
      match: [{left: accountName, right: Account_Name}]
      fields:
        - {left: accountName, right: Account_Name}
""")
    list(workspace.reconcile(session, sync=False))
    assert [d.name for d in session.store().list_deployed()] == ["accounts-oneway", "desk-bigin"]
    extra.unlink()
    session.specs(reload=True)
    (run,) = workspace.reconcile(session, sync=False, prune=True)
    assert [(c.address, c.action) for c in run.plan.changes if c.action != "no-op"] == [
        ("accounts-oneway", "delete"), ("accounts-oneway.accounts", "delete")]
    assert [d.name for d in session.store().list_deployed()] == ["desk-bigin"]


def test_a_long_lived_session_sees_spec_edits_without_reload(session, edit_spec):
    first = workspace.plan(session, refresh=False)
    edit_spec("Support and sales share", "Support and sales now share")
    second = workspace.plan(session, refresh=False)  # no session.specs(reload=True) here
    assert second.spec_hash != first.spec_hash
    assert [c.address for c in second.changes if c.action == "create"][0] == "desk-bigin"
    assert second.steps[0].payload["spec"]["integration"]["description"].startswith("Support and sales now")


def test_library_front_door_apply_and_destroy(session, repo):
    assert workspace.apply(session, sync=False, refresh=False).ok  # plans and applies
    assert not workspace.plan(session, refresh=False).has_changes
    save = repo / "plans" / "d.json"
    from engine.plan.model import save_plan

    save_plan(workspace.destroy_plan(session, "desk-bigin"), str(save))
    assert workspace.apply(session, save, sync=False).ok  # a saved plan file
    assert session.store().get_deployed("desk-bigin") is None
    workspace.apply(session, sync=False, refresh=False)
    assert workspace.destroy(session, "desk-bigin").ok
    assert session.store().list_deployed() == []


def test_plan_and_apply_under_one_lock_keep_others_out_until_done(session):
    from engine.state import open_store

    other = open_store(session.state_url, base=session.root)
    try:
        with workspace.locked(session, "apply") as lock:
            p = workspace.plan(session, refresh=False)
            with pytest.raises(LockedError, match='running "apply"'):
                other.acquire_lock("apply", timeout=0.05)  # another apply cannot land in between
            assert workspace.apply_plan(session, p, sync=False, lock=lock).ok
            assert session.store().lock_info().id == lock.id  # the caller's lock is kept
        assert session.store().lock_info() is None
    finally:
        other.close()


def test_the_specs_cache_notices_a_rotated_secret_and_holds_no_plain_digest_of_it(repo, monkeypatch):
    import hashlib
    import json

    from engine.workspace import open_session

    monkeypatch.setenv("SF_TEST_DESK_SECRET", "first-secret-value")
    with open_session(root=repo, clock=lambda: NOW) as s:
        workspace.plan(s, refresh=False)
    cache = repo / ".syncform" / "cache" / "specs.json"
    first = json.loads(cache.read_text())
    text = cache.read_text()
    assert "first-secret-value" not in text
    assert hashlib.sha256(b"first-secret-value").hexdigest() not in text
    assert first["secrets"].startswith("scrypt:") and len(first["salt"]) == 32

    with open_session(root=repo, clock=lambda: NOW) as s:  # unchanged: a hit, the file is not rewritten
        workspace.plan(s, refresh=False)
    assert json.loads(cache.read_text())["salt"] == first["salt"]

    monkeypatch.setenv("SF_TEST_DESK_SECRET", "rotated-secret-value")
    with open_session(root=repo, clock=lambda: NOW) as s:  # rotated: a miss, written again with a new salt
        workspace.plan(s, refresh=False)
    again = json.loads(cache.read_text())
    assert again["salt"] != first["salt"] and again["secrets"] != first["secrets"]
    assert "rotated-secret-value" not in cache.read_text()
