"""The house's layering, read from the source: no stage package imports another stage package.

Stages sit side by side above the shared layers (llm, prompting, store, workspace, ...); an import
from one stage into another (even one inside a function) would make a stage depend on a neighbour's
internals. Shared layers import no stage at all. The CLI sits above everything and may import any, and so
does the report (``aesdata report`` draws what every stage wrote: it reads, it is read by none).
"""

from __future__ import annotations

import ast
from pathlib import Path

import aesdata

STAGES = ("ingest", "generate", "annotate", "cot", "publish", "evaluate")
ABOVE = ("cli", "report")  # may import any stage; no stage or shared layer imports them
PACKAGE = Path(aesdata.__file__).resolve().parent


def _module(path: Path, root: Path) -> str:
    parts = path.relative_to(root.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, module: str) -> set[str]:
    """Every module ``path`` (module ``module``) imports, anywhere in it, relative imports resolved."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)  # ``from aesdata import cot``
    return found


def _layer(module: str) -> str | None:
    """The part of aesdata a module belongs to: a stage's name, "cli", or None (a shared layer)."""
    parts = module.split(".")
    if parts[0] != "aesdata" or len(parts) < 2:
        return None
    return parts[1] if parts[1] in (*STAGES, *ABOVE) else None


def crossings(root: Path = PACKAGE) -> list[str]:
    """``file: imports module`` for every import from one stage (or a shared layer) into a stage."""
    bad = []
    for path in sorted(root.rglob("*.py")):
        module = _module(path, root)
        here = _layer(module)
        if here in ABOVE:
            continue
        for name in sorted(_imports(path, module)):
            there = _layer(name)
            if there in STAGES and there != here:
                bad.append(f"{path.relative_to(root.parent)}: imports {name}")
    return bad


def test_no_stage_imports_another_stage_and_shared_layers_import_none() -> None:
    assert crossings() == []


def test_the_walk_sees_every_kind_of_import(tmp_path: Path) -> None:
    """The checker itself: absolute, from-package, relative and function-local imports all count."""
    fake = tmp_path / "aesdata"
    (fake / "publish").mkdir(parents=True)
    (fake / "llm").mkdir()
    for init in (fake / "__init__.py", fake / "publish" / "__init__.py", fake / "llm" / "__init__.py"):
        init.write_text("")
    (fake / "publish" / "a.py").write_text("import aesdata.evaluate.mining\n")
    (fake / "publish" / "b.py").write_text("from aesdata import cot\n")
    (fake / "publish" / "c.py").write_text("def f():\n    from ..evaluate import run\n")
    (fake / "publish" / "d.py").write_text("from . import writer\nfrom aesdata import store\n")
    (fake / "llm" / "e.py").write_text("from aesdata.cot.llm import LLMWriter\n")
    assert crossings(fake) == [
        "aesdata/llm/e.py: imports aesdata.cot.llm",
        "aesdata/llm/e.py: imports aesdata.cot.llm.LLMWriter",
        "aesdata/publish/a.py: imports aesdata.evaluate.mining",
        "aesdata/publish/b.py: imports aesdata.cot",
        "aesdata/publish/c.py: imports aesdata.evaluate",
        "aesdata/publish/c.py: imports aesdata.evaluate.run",
    ]
