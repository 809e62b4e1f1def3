"""Write the byte-code of .venv and of the source tree once, on every core (``make test``'s set-up).

pip installs with ``--no-compile``, and where ``PYTHONDONTWRITEBYTECODE=1`` is set (CI's shells) Python
writes no ``.pyc`` of its own: without this, every process the suite starts compiled torch, datasets and ray
from source again. The libraries' own test suites are left out (a fifth of the byte-code, of which a fresh
clone's whole run read 17 small files). A file that does not compile (torch ships a Python 3.12-only test
module) is left to the interpreter, as pip leaves it: this step never fails a run for that.
"""

from __future__ import annotations

import compileall
import re
import sysconfig
from pathlib import Path


def main() -> None:
    site = Path(sysconfig.get_paths()["purelib"]).resolve()
    # matched against the full path: anchored below site-packages, so a checkout under a "tests" folder is fine
    libraries_tests = re.compile(re.escape(str(site)) + r"/(.+/)?tests?/")
    compileall.compile_dir(site, quiet=2, workers=0, rx=libraries_tests)
    for tree in ("aesdata", "tests"):
        compileall.compile_dir(tree, quiet=2, workers=0)


if __name__ == "__main__":
    main()
