#!/usr/bin/env bash
# Render an HTML report with headless Chromium and save a PNG screenshot of it.
#
#   scripts/screenshot.sh REPORT.html OUT.png [WIDTHxHEIGHT]     (default size 1280x1600)
#
# The screenshot covers the window only, so pass a taller size for a long page. Network access
# is switched off as far as Chromium allows: a report must render from local files alone.
set -euo pipefail

if [[ $# -lt 2 || $# -gt 3 ]]; then
    echo "usage: $0 REPORT.html OUT.png [WIDTHxHEIGHT]" >&2
    exit 2
fi
report=$1
out=$2
size=${3:-1280x1600}
if [[ ! -f $report ]]; then
    echo "$0: no such file: $report" >&2
    exit 2
fi
if [[ ! $size =~ ^[0-9]+x[0-9]+$ ]]; then
    echo "$0: size must look like 1280x1600, got: $size" >&2
    exit 2
fi
browser=${CHROMIUM:-$(command -v chromium || command -v chromium-browser || command -v google-chrome || true)}
if [[ -z $browser ]]; then
    echo "$0: chromium not found (install it, or set CHROMIUM=/path/to/browser)" >&2
    exit 2
fi

report_abs=$(realpath "$report")
out_abs=$(realpath -m "$out")
mkdir -p "$(dirname "$out_abs")"
# a throwaway profile so the run neither reads nor changes the user's own browser profile
profile=$(mktemp -d)
trap 'rm -rf "$profile"' EXIT
rm -f "$out_abs"

timeout 60 "$browser" --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
    --disable-background-networking --disable-component-update --disable-sync --hide-scrollbars \
    --user-data-dir="$profile" --screenshot="$out_abs" --window-size="${size/x/,}" \
    "file://$report_abs" >/dev/null 2>&1 || true

# chromium's exit status is unreliable in headless mode; the file is the real result
if [[ ! -s $out_abs ]]; then
    echo "$0: chromium wrote no screenshot" >&2
    exit 1
fi
echo "$out_abs"
