#!/usr/bin/env bash
# Runs a command with a moto (Secrets Manager stand-in) server on a free loopback port,
# exported as MOTO_ENDPOINT, and stops the server afterwards, whatever happens.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
moto="$here/.venv/bin/moto_server"
[ -x "$moto" ] || { echo "with-moto: $moto missing; run 'make tools'" >&2; exit 2; }

if [ -n "${MOTO_ENDPOINT:-}" ]; then exec "$@"; fi

port=$("$here/.venv/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
log=$(mktemp -t moto.XXXXXX.log)
# moto_server.py: moto's server with a deviation from AWS corrected (see the file).
"$here/.venv/bin/python" "$here/scripts/moto_server.py" -H 127.0.0.1 -p "$port" >"$log" 2>&1 &
pid=$!
cleanup() { kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; rm -f "$log"; }
trap cleanup EXIT INT TERM
for _ in $(seq 1 100); do
  if "$here/.venv/bin/python" - "$port" <<'PY' 2>/dev/null; then break; fi
import sys, urllib.request
urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/moto-api/", timeout=1)
PY
  kill -0 "$pid" 2>/dev/null || { echo "with-moto: moto_server failed to start:" >&2; cat "$log" >&2; exit 2; }
  sleep 0.1
done
export MOTO_ENDPOINT="http://127.0.0.1:$port"
echo "with-moto: moto_server on $MOTO_ENDPOINT" >&2
"$@"
