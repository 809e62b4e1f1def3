"""``aesdata report``: a workspace made by the real demo path, its report opened in headless chromium.

The workspace: demo-sources, ingest, generate (synthetic), cot template, publish 1.0.0; then human
annotations stored as ``annotate pull`` stores them (three pseudonymous annotators, one disagreement),
the random baseline and a scripted model evaluated with ``aesdata eval``, and one hostile eval report
whose model name is HTML (it must show as text: an ``<img>`` it smuggled in would fail the image check).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from aesdata import store
from aesdata.annotate.consensus import consensus
from aesdata.cli.main import app
from aesdata.errors import AesdataError
from aesdata.report.build import write_report
from aesdata.report.svg import Bar, bars
from aesdata.schema import Annotation, Judgement, Label
from aesdata.workspace import Workspace
from tests.openai_server import OpenAIServer

CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--no-first-run"]
DOCS_SHOT = Path(__file__).resolve().parents[2] / "docs" / "report.png"
HOSTILE = "<img src=x onerror=alert(1)>"
ANNOTATORS = ("ann-1f3a9c0e2b7d4a68", "ann-7c2e5b9d0a4f1e36", "ann-c94d1e7a3b0f2856")


def _ok(cli: CliRunner, *args: str) -> str:
    result = cli.invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.output


def _annotate(ws: Workspace) -> None:
    """Three annotators on three samples, as pull stores them; they disagree on the last one."""
    samples = [s for s, _ in store.iter_labelled(ws.db)][:3]
    with ws.transaction() as db:
        for n, sample in enumerate(samples):
            truth = store.get_label(db, sample.id).judgement
            given = {who: truth for who in ANNOTATORS}
            if n == 2:  # the third annotator rejects A, which the others accept (or accepts what they reject)
                flipped = {s: list(v) for s, v in truth.defects.items()}
                flipped["A"] = [] if flipped["A"] else ["physical_shadow"]
                given[ANNOTATORS[2]] = Judgement.from_defects(flipped)
            for who, judgement in given.items():
                store.upsert_annotation(db, Annotation(sample_id=sample.id, annotator=who, judgement=judgement))
            agreed = consensus(list(given.values()))
            store.upsert_label(db, Label(sample_id=sample.id, origin="human", judgement=agreed.judgement,
                                         annotators=list(given), agreement=agreed.agreement,
                                         needs_review=agreed.needs_review))


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("report")
    ws_path, cli = root / "ws", CliRunner()
    env = {"AESDATA_WORKSPACE": str(ws_path), "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
           "HF_DATASETS_CACHE": str(root / "hf-cache")}
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        _ok(cli, "init", str(ws_path))
        _ok(cli, "demo-sources", str(root / "photos"), "--n", "10")
        _ok(cli, "ingest", str(root / "photos"))
        _ok(cli, "generate", "--backend", "synthetic", "--size", "128")
        _ok(cli, "cot", "--mode", "template")
        with Workspace.open(ws_path) as ws:
            _annotate(ws)
        _ok(cli, "publish", "--version", "1.0.0", "--out", str(root / "published"), "--test-fraction", "0.3")
        reports = ws_path / "reports"
        _ok(cli, "eval", "--baseline", "random", "--version", "1.0.0", "--split", "train",
            "--out", str(reports / "random.json"))
        with OpenAIServer(lambda body, i: "<answer>A</answer>") as server:
            _ok(cli, "eval", "--model", "scripted-vlm", "--base-url", server.base_url, "--version", "1.0.0",
                "--split", "train", "--out", str(reports / "scripted-vlm.json"))
        hostile = json.loads((reports / "scripted-vlm.json").read_text())
        hostile["model"] = HOSTILE
        (reports / "hostile.json").write_text(json.dumps(hostile))
        (reports / "broken.json").write_text("{not json")
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return ws_path


@pytest.mark.slow
def test_the_report_opens_in_chromium_with_every_image_and_no_console_error(demo: Path, tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    out = tmp_path / "report"
    result = CliRunner().invoke(app, ["report", "-w", str(demo), "--out", str(out), "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["version"] == "1.0.0" and summary["eval_reports"] == 3 and summary["bad_eval_reports"] == 1
    assert summary["annotators"] == 3 and summary["disagreements"] == 1 and summary["images"] > 10
    assert sorted(p.name for p in out.iterdir()) == ["img", "index.html"]
    shot = tmp_path / "report.png"
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1240, "height": 900})
            errors: list[str] = []
            page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            requests: list[str] = []
            page.on("request", lambda req: requests.append(req.url))
            page.goto((out / "index.html").as_uri())
            page.wait_for_load_state("load")
            sizes = page.eval_on_selector_all("img", "imgs => imgs.map(i => [i.complete, i.naturalWidth])")
            assert len(sizes) >= 5 * 5 and all(done and width > 0 for done, width in sizes), sizes
            assert errors == []
            assert all(url.startswith("file://") for url in requests)  # nothing from the network
            for name in ("Counts per split and dimension", "Samples per dimension", "Annotators",
                         "Disagreements", "Models compared"):
                assert page.get_by_role("heading", name=name, exact=True).is_visible()
            assert page.get_by_text(HOSTILE).first.is_visible()  # the hostile name is text, not markup
            assert page.get_by_text("not an aesdata eval report").count() + page.get_by_text(
                "cannot read the eval report").count() == 1
            assert page.locator("svg.chart").count() >= 5
            assert page.get_by_role("cell", name="scripted-vlm", exact=True).first.is_visible()
            page.screenshot(path=str(shot), full_page=True)
        finally:
            browser.close()
    assert shot.stat().st_size > 50_000
    if os.environ.get("AESDATA_UPDATE_DOCS") == "1":
        shutil.copyfile(shot, DOCS_SHOT)


def test_the_figures_come_from_the_workspace(demo: Path, tmp_path: Path) -> None:
    with Workspace.open(demo) as ws:
        write_report(ws, out=tmp_path / "r")
        splits = dict(ws.db.execute("SELECT split, COUNT(*) FROM version_rows GROUP BY split").fetchall())
    html = (tmp_path / "r" / "index.html").read_text()
    assert f"<b>{splits['train']}</b><span>train rows</span>" in html
    assert "<script" not in html and HOSTILE not in html and "&lt;img src=x onerror=alert(1)&gt;" in html
    for who in ANNOTATORS:
        assert who in html
    assert "(needs review)" in html  # the disputed sample's label
    assert html.count('<span class="box') >= 3  # the synthetic backend's defect regions, drawn over the tiles
    # scripted-vlm always answers A: its exact score is the share of rows whose answer is exactly A,B
    report = json.loads((demo / "reports" / "scripted-vlm.json").read_text())
    assert f"<td class=\"n\">{report['metrics']['exact']:.3f}</td>" in html


def test_unknown_version_unpublished_workspace_and_a_foreign_out_folder(ws: Workspace, tmp_path: Path) -> None:
    with pytest.raises(AesdataError, match="version 9.9.9: not published in this workspace"):
        write_report(ws, version="9.9.9")
    summary = write_report(ws, out=tmp_path / "empty")
    assert summary["version"] == "unpublished" and summary["rows"] == 0
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    with pytest.raises(AesdataError, match="exists and is not a report folder"):
        write_report(ws, out=foreign)
    assert (foreign / "notes.txt").read_text() == "keep me" and not list(tmp_path.glob(".mine.tmp-*"))
    assert write_report(ws, out=tmp_path / "empty")["rows"] == 0  # a report folder is replaced whole


def test_charts_escape_their_text_and_scale_bars() -> None:
    svg = bars([("<b>", [Bar("s&p", 0.5, "#000"), Bar("n", None, "#111")]), ("two", [Bar("s&p", 1.0, "#000")])],
               title="t<", scale_max=1.0, width=400)
    assert "<b>" not in svg and "&lt;b&gt;" in svg and "s&amp;p" in svg and "t&lt;" in svg and "n/a" in svg
    widths = [float(w) for w in __import__("re").findall(r'<rect x="190" y="\d+" width="([\d.]+)" height="14"', svg)]
    assert widths == [77.0, 154.0]  # half and all of the 154 px plot width
