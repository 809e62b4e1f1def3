"""An annotator's path through the real labeling page: headless Debian chromium driven by Playwright.

Log in, open a task, tick choices, write a rationale, submit; then ``annotate pull`` sees exactly that.
The screenshot of the filled interface is what the README shows (refresh it with
``AESDATA_UPDATE_DOCS=1``; otherwise it goes to the test's temporary folder only).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from playwright.sync_api import sync_playwright

from aesdata import store
from aesdata.annotate.pull import pull
from aesdata.annotate.push import push
from aesdata.schema import Judgement
from tests.factories import make_samples

pytestmark = pytest.mark.slow

CHROMIUM = "/usr/bin/chromium"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
DOCS_SHOT = Path(__file__).resolve().parents[2] / "docs" / "labelstudio.png"


def test_an_annotation_submitted_in_the_browser_is_pulled(label_studio, ls_ws, tmp_path):
    [sample_id] = make_samples(ls_ws, 1, seed=7)
    push(ls_ws, files_root=label_studio.server.files_root, predictions="none")
    project = ls_ws.db.execute("SELECT project_id FROM ls_projects").fetchone()[0]
    task = ls_ws.db.execute("SELECT task_id FROM ls_tasks").fetchone()[0]
    shot = tmp_path / "labelstudio.png"

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1500, "height": 1350})
            page.goto(f"{label_studio.url}/user/login/")
            page.fill("input[name=email]", label_studio.server.username)
            page.fill("input[name=password]", label_studio.server.password)
            page.click("button[type=submit]")
            page.wait_for_url(lambda url: "/user/login" not in url)

            page.goto(f"{label_studio.url}/projects/{project}/data?task={task}")
            page.locator("#aes-acceptable").wait_for(timeout=60_000)
            for slot in "ABCD":  # every image actually loaded from the workspace's blobs
                page.locator(f"#aes-cand-{slot} img").first.wait_for(timeout=30_000)
            page.locator("#aes-acceptable input[name='A']").click()
            page.keyboard.press("s")  # hotkey of "B: shadow"
            page.locator("#aes-defects-C input[name='C: placement']").click()
            page.locator("#aes-defects-D input[name='D: deformed']").click()
            page.locator("#aes-rationale textarea").fill("B's shadow falls towards the light.")
            page.screenshot(path=str(shot))
            with page.expect_response(lambda r: "/annotations" in r.url and r.request.method == "POST") as posted:
                page.get_by_role("button", name="Submit").click()
            assert posted.value.status == 201
        finally:
            browser.close()

    assert shot.stat().st_size > 50_000
    if os.environ.get("AESDATA_UPDATE_DOCS") == "1":
        DOCS_SHOT.parent.mkdir(exist_ok=True)
        shutil.copyfile(shot, DOCS_SHOT)

    summary = pull(ls_ws)
    assert summary["annotations_new"] == 1
    [annotation] = store.get_annotations(ls_ws.db, sample_id)
    assert annotation.judgement == Judgement.from_defects(
        {"B": ["physical_shadow"], "C": ["placement_layout"], "D": ["appearance_deformation"]}
    )
    assert annotation.rationale == "B's shadow falls towards the light."
    assert store.get_label(ls_ws.db, sample_id).origin == "human"
