#!/usr/bin/env bash
# Creates Label Studio's own virtualenv: `bash scripts/install_labelstudio.sh [VENV_DIR]`.
#
# Label Studio pins libraries aesdata needs newer (openai<2, pyarrow<25); installed beside aesdata, pip
# refuses or silently backtracks to an old Label Studio, so it lives apart. The `.installed` stamp is
# written last, only after a successful install and a version check, so an interrupted run is redone and a
# finished one is a no-op.
set -euo pipefail

VENV="${1:-.venv-labelstudio}"
VERSION="1.23.2"
PYTHON="${PYTHON:-python3}"
STAMP="$VENV/.installed"

if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$VERSION" ]; then
    touch "$STAMP"  # newer than this script, so make stops asking
    echo "label-studio $VERSION already installed in $VENV"
    exit 0
fi

test -x "$VENV/bin/python" || "$PYTHON" -m venv "$VENV"
"$VENV/bin/python" -m pip install -q --upgrade pip
"$VENV/bin/python" -m pip install -q "label-studio==$VERSION"
installed="$("$VENV/bin/python" -c 'import importlib.metadata as m; print(m.version("label-studio"))')"
if [ "$installed" != "$VERSION" ]; then
    echo "expected label-studio $VERSION in $VENV, found $installed" >&2
    exit 1
fi
echo "$VERSION" > "$STAMP"
echo "label-studio $VERSION installed in $VENV"
