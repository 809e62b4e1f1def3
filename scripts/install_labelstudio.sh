#!/usr/bin/env bash
# Creates the Label Studio virtualenv (filled in by the annotation stage).
set -euo pipefail
echo "label studio install: not yet"
