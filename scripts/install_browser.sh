#!/usr/bin/env bash
# Installs Debian's chromium for the browser test; Playwright drives it with executable_path=/usr/bin/chromium,
# so no browser download from Playwright's CDN is needed. A no-op when it is already there.
set -euo pipefail

if [ -x /usr/bin/chromium ]; then
    echo "chromium already installed: $(/usr/bin/chromium --version 2>/dev/null || echo /usr/bin/chromium)"
    exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    SUDO="sudo"
fi
$SUDO apt-get update
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y chromium
