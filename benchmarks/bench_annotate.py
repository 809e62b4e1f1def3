"""Push N samples to a local Label Studio and pull 3 annotations of each back: tasks/s each way.

Three annotator accounts are made through ``annotate add-annotator``'s sign-up path, the project has
overlap 3, and each of them turns every task's pre-annotation into their own annotation (set-up, not
measured). Baselines in the same run: a plain full JSON export of the same project (what a pull without
the incremental listing would download), and a second pull with nothing changed (the incremental path).
Anchor from the issue: Label Studio users report a 50k-task export taking about 4 minutes (~210 tasks/s).

``python benchmarks/bench_annotate.py [N]`` (default 10000; ``AESDATA_BENCH_ANNOTATE_N`` also works).
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from label_studio_sdk import LabelStudio  # noqa: E402

from aesdata import store  # noqa: E402
from aesdata.annotate.pull import pull  # noqa: E402
from aesdata.annotate.push import push  # noqa: E402
from aesdata.annotate.tasks import judgement_result  # noqa: E402
from aesdata.annotate.team import add_annotators  # noqa: E402
from aesdata.blobs import encode_png  # noqa: E402
from aesdata.schema import (  # noqa: E402
    SLOTS,
    Candidate,
    GenerationProvenance,
    Judgement,
    Label,
    Layout,
    Sample,
    Source,
)
from aesdata.workspace import Workspace  # noqa: E402
from tests.annotate.throwaway import log_in, start_throwaway  # noqa: E402
from tests.factories import box_image  # noqa: E402

ANCHOR_TASKS_PER_S = 50_000 / 240
OVERLAP = 3
PASSWORD = "bench-annotator-password"
JUDGEMENT = Judgement.from_defects({"B": ["physical_shadow"], "D": ["placement_layout"]})
OTHER = Judgement.from_defects({"A": ["appearance_deformation"], "D": ["placement_layout"]})


def fill(ws: Workspace, n: int) -> None:
    """N samples fast: a distinct tiny source each, four shared candidate images (push reads only shas)."""
    prov = GenerationProvenance(
        backend="synthetic",
        model_id="bench",
        pipeline_class="bench",
        prompt="p",
        seed=0,
        size=64,
        layout=Layout(scale=0.5, offset_x=0.5, offset_y=0.5),
    )
    cands = [ws.blobs.put_image(box_image(10_000 + k)) for k in range(4)]
    base = box_image(1)
    with ws.transaction() as db:
        for i in range(n):
            img = base.copy()
            img.putpixel((0, 0), (i % 256, (i // 256) % 256, (i // 65_536) % 256))
            sha = ws.blobs.put(encode_png(img))
            store.insert_source(
                db, Source(id=sha, width=64, height=64, mode="RGB", phash="0" * 16, dhash="0" * 16, origin=f"bench/{i}")
            )
            sample = Sample(id=store.sample_id_for(sha), source_id=sha, backend="synthetic", signature="bench")
            store.insert_sample(
                db,
                sample,
                [
                    Candidate(sample_id=sample.id, slot=s, sha256=c, width=64, height=64, seed=0, provenance=prov)
                    for s, c in zip(SLOTS, cands, strict=True)
                ],
            )
            store.upsert_label(db, Label(sample_id=sample.id, origin="synthetic", judgement=JUDGEMENT))


def main() -> None:
    n = int(sys.argv[1] if len(sys.argv) > 1 else os.environ.get("AESDATA_BENCH_ANNOTATE_N", "10000"))
    with tempfile.TemporaryDirectory() as tmp:
        server = start_throwaway(Path(tmp))
        try:
            ws = Workspace.init(server.files_root / "ws")
            settings = ws.root / "aesdata.toml"
            settings.write_text(settings.read_text().replace("http://127.0.0.1:8080", server.url))
            ws = Workspace.open(ws.root)
            fill(ws, n)
            os.environ["LABEL_STUDIO_API_KEY"] = server.token

            t0 = time.perf_counter()
            pushed = push(ws, files_root=server.files_root, overlap=OVERLAP)
            t_push = time.perf_counter() - t0
            assert pushed["pushed"] == n, pushed

            client = LabelStudio(base_url=server.url, api_key=server.token, timeout=600)
            project = pushed["project_id"]
            emails = [f"bench{i}@aesdata.local" for i in range(OVERLAP)]
            add_annotators(ws, emails, password_for=lambda _: PASSWORD)
            # Set-up, not measured: each annotator turns a fresh set of predictions into their own
            # annotations in one Data Manager action (Label Studio Community has no bulk annotation
            # endpoint; the action converts only predictions without an annotation yet). The last one
            # disagrees on every third task, so consensus and alpha have something to do.
            task_ids = [r[0] for r in ws.db.execute("SELECT task_id FROM ls_tasks ORDER BY task_id")]
            for k, email in enumerate(emails):
                if k:
                    client.projects.import_predictions(id=project, request=[
                        {"task": t, "model_version": f"bench-{k}",
                         "result": judgement_result(OTHER if k == OVERLAP - 1 and i % 3 == 0 else JUDGEMENT)}
                        for i, t in enumerate(task_ids)
                    ])  # type: ignore[misc]
                log_in(server.url, email, PASSWORD).actions.create(
                    id="predictions_to_annotations", project=project, selected_items={"all": True, "excluded": []}
                )

            t0 = time.perf_counter()
            pulled = pull(ws)
            t_pull = time.perf_counter() - t0
            assert pulled["annotations_new"] == OVERLAP * n, pulled
            assert pulled["alpha_acceptance"] is not None, pulled

            t0 = time.perf_counter()
            again = pull(ws)
            t_again = time.perf_counter() - t0
            assert again["annotations_new"] == 0 and again["tasks_unchanged"] == n, again

            t0 = time.perf_counter()
            raw = b"".join(client.projects.exports.download_sync(id=project, export_type="JSON"))
            t_export = time.perf_counter() - t0
        finally:
            server.stop()

    rows = [
        ("push (import + record)", n / t_push, t_push),
        (f"pull, {OVERLAP} annotations/task (list + export + validate + store + labels)", n / t_pull, t_pull),
        ("pull again, nothing changed (incremental)", n / t_again, t_again),
        ("baseline: plain full JSON export, no processing", n / t_export, t_export),
    ]
    print(
        f"Label Studio round trip, {n} samples/tasks x {OVERLAP} annotations, {os.cpu_count()} CPU(s);"
        f" export {len(raw) / 1e6:.1f} MB"
    )
    print(f"{'step':72} {'tasks/s':>9} {'seconds':>8} {'vs anchor':>9}")
    for name, rate, secs in rows:
        print(f"{name:72} {rate:9.0f} {secs:8.1f} {rate / ANCHOR_TASKS_PER_S:8.1f}x")
    print(f"anchor: 50k-task export in ~4 min = {ANCHOR_TASKS_PER_S:.0f} tasks/s (reported by Label Studio users)")
    print(f"pull vs plain export: {t_export / t_pull:.2f}x the plain export's speed")
    if n < 10_000:
        print(f"scaled down to {n} tasks (pass N to change it); rates are per task and roughly size-independent")


if __name__ == "__main__":
    main()
