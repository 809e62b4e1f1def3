#!/usr/bin/env bash
# make demo: the main job on the embedded default (no GPU, no network, no API key).
set -euo pipefail
echo "make demo: not yet: generation and publish stages have not landed"
