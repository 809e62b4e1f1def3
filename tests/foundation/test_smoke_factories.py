from aesdata import status, store
from tests.factories import make_samples


def test_factory_samples_are_complete(ws):
    ids = make_samples(ws, 3)
    assert status.counts(ws)["samples"] == 3
    assert status.counts(ws)["candidates"] == 12
    for sid in ids:
        cands = store.get_candidates(ws.db, sid)
        assert [c.slot for c in cands] == ["A", "B", "C", "D"]
        assert all(ws.blobs.exists(c.sha256) for c in cands)
        label = store.get_label(ws.db, sid)
        assert label is not None and label.origin == "synthetic"
