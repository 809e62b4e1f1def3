"""The labelling page as a person uses it: headless Debian chromium driven by Playwright.

Locators are what a person sees: the choices by their visible text inside each card ("B: shadow", "A"), the
buttons by their accessible names ("Label All Tasks", "Submit current annotation", "Update", "Skip").
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from urllib.parse import quote

from playwright.sync_api import Browser, Page, expect, sync_playwright

from aesdata.schema import SLOTS, Judgement

CHROMIUM = "/usr/bin/chromium"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
#: The visible word of each dimension's choice (label_studio_config.xml: "A: deformed" ...).
WORD = {
    "appearance_deformation": "deformed",
    "physical_shadow": "shadow",
    "placement_layout": "placement",
    "extension_rationality": "extension",
}
WAIT_MS = 60_000


@contextmanager
def chromium() -> Iterator[Browser]:
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
        try:
            yield browser
        finally:
            browser.close()


def log_in(browser: Browser, url: str, email: str, password: str, to: str | None = None) -> Page:
    """A fresh browser context (its own cookies) signed in as ``email``, on the page ``to`` (a path) where
    given: the sign-in form forwards there, as it does for a link a person opens while signed out, instead
    of to the project list first (one page load less)."""
    page = browser.new_context(viewport={"width": 1500, "height": 1350}).new_page()
    page.goto(f"{url}/user/login/" + (f"?next={quote(to)}" if to else ""))
    page.fill("input[name=email]", email)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")
    page.wait_for_url(lambda u: "/user/login" not in u, timeout=WAIT_MS)
    return page


def data_page(project: int, task: int | None = None) -> str:
    """The path of a project's Data Manager (with one task opened in it)."""
    return f"/projects/{project}/data" + (f"?task={task}" if task is not None else "")


def open_data_manager(page: Page, url: str, project: int) -> None:
    """Open the project's Data Manager, unless the page has just been signed in there (:func:`log_in` with
    ``to``); a page on a task (``?task=``) or anywhere else opens it afresh."""
    if page.url != url + data_page(project):
        page.goto(url + data_page(project))


def wait_for_task(page: Page) -> None:
    page.locator("#aes-acceptable").wait_for(timeout=WAIT_MS)
    for slot in SLOTS:  # every image actually loaded from the workspace's blobs
        page.locator(f"#aes-cand-{slot} img").first.wait_for(timeout=WAIT_MS)


def tick(page: Page, slot: str, dimension: str | None = None) -> None:
    """Click one choice: a defect under candidate ``slot``, or ``slot`` in the acceptable row.

    Label Studio names each checkbox after the choice's visible text ("A", "B: shadow").
    """
    if dimension is None:
        page.locator(f"#aes-acceptable input[name='{slot}']").click()
    else:
        page.locator(f"#aes-defects-{slot} input[name='{slot}: {WORD[dimension]}']").click()


def draw_box(page: Page, slot: str, dimension: str, box: tuple[float, float, float, float]) -> None:
    """Mark where a defect is: click the dimension's label under candidate ``slot``, then drag ``box``
    (``x, y, w, h`` as fractions of the shown image) on that candidate with the mouse."""
    page.locator(f"#aes-regions-{slot}").get_by_text(f"{slot}: {WORD[dimension]}", exact=True).click()
    shown = page.locator(f"#aes-cand-{slot} img").first.bounding_box()
    assert shown is not None, f"candidate {slot} is not shown"
    x, y, w, h = box
    left, top = shown["x"] + x * shown["width"], shown["y"] + y * shown["height"]
    page.mouse.move(left, top)
    page.mouse.down()
    page.mouse.move(left + w * shown["width"], top + h * shown["height"], steps=8)
    page.mouse.up()


def fill(page: Page, judgement: Judgement, *, cross_check: bool = True) -> None:
    """Tag every defect of ``judgement`` and (as the guidelines ask) tick the acceptable candidates."""
    for slot in SLOTS:
        for dim in judgement.defects[slot]:
            tick(page, slot, dim)
    if cross_check:
        for slot in judgement.answer:
            tick(page, slot)


def submit(page: Page, update: bool = False) -> int:
    """Press Submit (Update for an annotation already submitted); return the request's HTTP status."""
    method = "PATCH" if update else "POST"
    text = re.compile(r"^\s*(Update|Submit)\s*$")  # the words on the button (its aria-label differs by view)
    with page.expect_response(
        lambda r: "/annotations" in r.url and r.request.method == method, timeout=WAIT_MS
    ) as sent:
        page.get_by_role("button").filter(has_text=text).first.click()
    return sent.value.status


def _is_next(response) -> bool:
    return "/api/dm/actions" in response.url and "id=next_task" in response.url


def read_instructions(page: Page) -> str:
    """The guidelines Label Studio shows as the label stream opens (the project's instructions): their text,
    read, then closed with Escape as a person does."""
    title = page.get_by_text("Labeling Instructions", exact=True)
    title.wait_for(timeout=WAIT_MS)
    text = page.locator(".lsf-modal-ls__content").filter(has=title).inner_text()
    page.keyboard.press("Escape")
    expect(title).to_be_hidden(timeout=WAIT_MS)
    return text


def walk_stream(page: Page, url: str, project: int, answer_for: Mapping[int, Judgement]) -> tuple[list[int], str]:
    """Open the project's label stream ("Label All Tasks"), read the instructions it shows first, and label
    what it hands out until it runs dry.

    ``answer_for`` maps a task id to the judgement to enter; returns the task ids in the order served
    (the stream's own choice, read from the responses of the Data Manager's ``next_task`` action, which
    is Label Studio's ``get_next_task``, the same as ``/api/projects/{id}/next``) and the instructions.
    """
    served: list[int] = []

    open_data_manager(page, url, project)
    with page.expect_response(_is_next, timeout=WAIT_MS) as nxt:
        page.get_by_role("button", name="Label All Tasks").click()
    instructions = read_instructions(page)
    while nxt.value.status == 200:
        served.append(int(nxt.value.json()["id"]))
        wait_for_task(page)
        expect(page.locator("#aes-acceptable input:checked, .aes-card input:checked")).to_have_count(0)
        fill(page, answer_for[served[-1]])
        with page.expect_response(_is_next, timeout=WAIT_MS) as nxt:
            assert submit(page) == 201
    expect(page.get_by_text("No More Tasks Left in Queue")).to_be_visible(timeout=WAIT_MS)
    return served, instructions


def skip_next(page: Page, url: str, project: int) -> tuple[int, str]:
    """Open the label stream, close its instructions and press Skip on the task it hands out; return that
    task's id and the instructions."""
    open_data_manager(page, url, project)
    with page.expect_response(_is_next, timeout=WAIT_MS) as nxt:
        page.get_by_role("button", name="Label All Tasks").click()
    instructions = read_instructions(page)
    wait_for_task(page)
    with page.expect_response(lambda r: "/annotations" in r.url and r.request.method == "POST") as sent:
        page.get_by_role("button").filter(has_text=re.compile(r"^\s*Skip\s*$")).first.click()
    assert sent.value.status == 201
    return int(nxt.value.json()["id"]), instructions


def open_task(page: Page, url: str, project: int, task: int) -> None:
    page.goto(url + data_page(project, task))
    wait_for_task(page)


def delete_all_annotations(page: Page, url: str, project: int) -> None:
    """In the Data Manager: select every task (the header checkbox), Actions -> Delete Annotations, confirm."""
    page.goto(f"{url}/projects/{project}/data")
    page.get_by_role("button", name="Label All Tasks").wait_for(timeout=WAIT_MS)
    page.get_by_role("checkbox").first.check()
    page.get_by_role("button", name="Actions").click()
    page.get_by_text("Delete Annotations", exact=True).click()
    with page.expect_response(lambda r: "/actions" in r.url and r.request.method == "POST", timeout=WAIT_MS) as sent:
        page.get_by_role("button", name="Delete Annotations", exact=True).click()  # the confirmation
    assert sent.value.status == 200
