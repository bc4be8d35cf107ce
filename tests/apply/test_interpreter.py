"""The interpreter runs a plan's steps in order, one visit per step, and hands syncs to the sync engine."""

from __future__ import annotations

from engine.apply.interpreter import Applier
from engine.errors import SyncError
from engine.state import open_store
from tests.plan.support import base, make_plan, module


class RecordingSync:
    """Stands in for engine.sync.sync_integration through the Applier's sync_fn seam."""

    def __init__(self, fail: set[str] = frozenset()):
        self.calls: list[tuple[str, tuple[str, ...], bool, str, str]] = []
        self.fail = fail

    def __call__(self, integration, *, store, left, right, modules, full, clock, progress):
        self.calls.append((integration.name, tuple(modules), full, left, right))
        progress(modules[0], "read left", 0, None)
        if modules[0] in self.fail:
            raise SyncError(f"{modules[0]} broke")

        class Report:
            ok = True
            message = ""

            @staticmethod
            def total(kind):
                return {"created": 2}.get(kind, 0)

        return Report()


def test_syncs_run_in_plan_order_with_the_right_pass(tmp_path):
    store = open_store("sqlite:///s.db", base=tmp_path)
    first = make_plan(base(), {}, lineage=store.lineage(), serial=store.serial())
    sync = RecordingSync()
    progress: list[str] = []
    result = Applier(first, store=store, clients=lambda name: f"client:{name}", sync_fn=sync,
                     progress=progress.append).run()
    assert result.ok
    assert sync.calls == [("desk-bigin", ("contacts",), False, "client:desk", "client:bigin"),
                          ("desk-bigin", ("products",), False, "client:desk", "client:bigin")]
    assert [r.message for r in result.results][1] == ("initial sync of desk-bigin.contacts: 2 created, 0 updated, "
                                                      "0 deleted, 0 linked, 0 failed")
    assert "desk-bigin.contacts: read left" in progress

    desired = base()
    module(desired["desk-bigin"], "contacts")["match"] = [{"left": "secondaryEmail", "right": "Email"}]
    module(desired["desk-bigin"], "products")["fields"][0]["direction"] = "left-to-right"
    second = make_plan(desired, {d.name: d for d in store.list_deployed()}, lineage=store.lineage(),
                       serial=store.serial())
    assert [s.type for s in second.steps] == ["put_integration", "forget_module", "full_resync", "backfill"]
    sync.calls.clear()
    Applier(second, store=store, clients=lambda name: name, sync_fn=sync).run()
    assert [(c[1], c[2]) for c in sync.calls] == [(("contacts",), True), (("products",), True)]


def test_a_failing_sync_step_is_reported_and_the_others_still_run(tmp_path):
    store = open_store("sqlite:///s.db", base=tmp_path)
    plan = make_plan(base(), {}, lineage=store.lineage(), serial=store.serial())
    sync = RecordingSync(fail={"contacts"})
    result = Applier(plan, store=store, clients=lambda name: name, sync_fn=sync).run()
    assert not result.ok
    assert [(r.step.type, r.status) for r in result.results] == [
        ("put_integration", "done"), ("initial_sync", "failed"), ("initial_sync", "done")]
    assert "contacts broke" in result.results[1].message
    assert store.get_deployed("desk-bigin") is not None  # the configuration stays committed
    assert store.lock_info() is None


def test_an_integration_paused_with_the_cli_stays_paused_and_runs_no_sync(tmp_path):
    from engine.state.base import Deployed

    store = open_store("sqlite:///s.db", base=tmp_path)
    old = base()
    old["desk-bigin"]["integration"]["description"] = "before"
    store.put_deployed(Deployed(name="desk-bigin", spec=old["desk-bigin"], spec_hash="h", paused=True))
    store.set_meta("paused-by-cli:desk-bigin", "1")
    desired = base()
    module(desired["desk-bigin"], "contacts")["fields"][0]["left"] = ["cf.cf_nickname"]
    plan = make_plan(desired, {d.name: d for d in store.list_deployed()}, lineage=store.lineage(),
                     serial=store.serial())
    assert [s.type for s in plan.steps] == ["put_integration", "backfill"]
    sync = RecordingSync()
    result = Applier(plan, store=store, clients=lambda name: name, sync_fn=sync).run()
    assert sync.calls == []
    assert result.results[1].status == "skipped" and "is paused" in result.results[1].message
    assert store.get_deployed("desk-bigin").paused is True
