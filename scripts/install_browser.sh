#!/usr/bin/env bash
# Installs Debian's chromium for the browser test (filled in by the annotation stage).
set -euo pipefail
echo "browser install: not yet"
