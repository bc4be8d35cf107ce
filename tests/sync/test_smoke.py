from tests.sync.conftest import make_integration


def test_first_one_way_then_noop(sync, apps):
    left, right = apps
    for i in range(450):
        left.put("contacts", {"firstName": f"Ann{i}", "lastName": f"Lee{i}", "email": f"ann{i}@x.com",
                              "phone": f"+1 555 010 {i:04d}"})
    rep = sync()
    assert rep.ok, rep.as_dict()
    assert len(right.all("Contacts")) == 450
    assert rep.total("created") == 450
    before = right.writes() + left.writes()
    rep2 = sync()
    assert rep2.writes == 0, rep2.as_dict()
    assert right.writes() + left.writes() == before
