#!/usr/bin/env bash
# make demo: the main job on the embedded default (no GPU, no network, no API key).
#
#   demo sources -> ingest -> synthetic generation (labels from the injected defects) -> template
#   rationales -> publish 1.0.0 into a local folder -> load it back with `datasets` -> contact sheet.
#
# DEMO_DIR (default: demo/) is rebuilt from scratch each run; DEMO_N sets the number of products.
set -euo pipefail
cd "$(dirname "$0")/.."

AES=.venv/bin/aesdata
PY=.venv/bin/python
DEMO_DIR=$(realpath -m "${DEMO_DIR:-demo}")
DEMO_N=${DEMO_N:-24}
export AESDATA_WORKSPACE="$DEMO_DIR/ws"
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1  # nothing leaves the machine
export HF_DATASETS_CACHE="$DEMO_DIR/.hf-cache"

step() { printf '\n== %s\n' "$*"; }

rm -rf "$DEMO_DIR"
step "workspace"
$AES init "$DEMO_DIR/ws"
step "demo sources ($DEMO_N product photos, drawn procedurally)"
$AES demo-sources "$DEMO_DIR/sources" --n "$DEMO_N"
step "ingest"
$AES ingest "$DEMO_DIR/sources"
step "generate: four candidates per source, synthetic backend (labels come from the injected defects)"
$AES generate --backend synthetic
step "cot: template rationales (rule-written, no LLM)"
$AES cot --mode template
step "publish 1.0.0"
$AES publish --version 1.0.0 --out "$DEMO_DIR/dataset" --test-fraction 0.25
$AES versions
$AES status

step "load it back with datasets.load_dataset"
$PY - "$DEMO_DIR/dataset" docs/contact_sheet.png <<'EOF'
import sys
from collections import Counter
from pathlib import Path

import datasets

from aesdata import contact_sheet

folder, sheet = sys.argv[1], Path(sys.argv[2])
datasets.disable_progress_bars()
ds = datasets.load_dataset(folder)
for split in ds:
    rows = ds[split]
    answers = Counter(len(a.split(",")) if a != "none" else 0 for a in rows["answer"])
    modes = Counter(rows["rationale_mode"])
    print(f"{split}: {len(rows)} rows; acceptable candidates per sample {dict(sorted(answers.items()))}; "
          f"rationales {dict(modes)}")
row = ds["train"][0]
print(f"first row: sample {row['sample_id']}, source {row['source'].size}, "
      f"{len(row['candidates'])} candidates {[c.size for c in row['candidates']]}, answer {row['answer']}")
print(f"  defects   {row['defects']}")
print(f"  rationale {row['rationale'][:160]}...")
contact_sheet.write(ds["train"].select(range(min(4, len(ds["train"])))), sheet)
print(f"contact sheet: {sheet}")
EOF
step "done: dataset in $DEMO_DIR/dataset (README.md is its dataset card)"
