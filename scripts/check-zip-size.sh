#!/usr/bin/env bash
# Fails when a Lambda zip is over the size budget (run by `make dist` and `make package`).
#
# usage: scripts/check-zip-size.sh ZIP...
#
# The budget is MAX_ZIP_BYTES bytes (default 4000000, i.e. 4 MB): the deployment package stays
# well inside Lambda's 50 MB direct-upload quota, and every cold start downloads and unpacks
# it. RELEASING.md says how the release profile was chosen to fit and what to look at when a
# change goes over.
set -euo pipefail

max=${MAX_ZIP_BYTES:-4000000}
case $max in
  '' | *[!0-9]*) echo "check-zip-size: MAX_ZIP_BYTES must be a number of bytes, not '$max'" >&2; exit 2 ;;
esac
[ $# -gt 0 ] || { echo "usage: $0 ZIP..." >&2; exit 2; }

status=0
for zip in "$@"; do
  if [ ! -f "$zip" ]; then
    echo "check-zip-size: $zip: no such file" >&2
    status=2
    continue
  fi
  size=$(wc -c < "$zip" | tr -d ' ')
  if [ "$size" -gt "$max" ]; then
    echo "check-zip-size: $zip is $size bytes, over the budget of $max bytes by $((size - max))." >&2
    echo "  A new dependency or feature (or a changed [profile.release]) grew the binary; see" >&2
    echo "  \"Zip size\" in RELEASING.md for what was measured and what to check." >&2
    status=1
  else
    echo "check-zip-size: $zip: $size bytes (budget $max)"
  fi
done
exit $status
