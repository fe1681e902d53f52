#!/usr/bin/env bash
# Reads the iAdvize access token that iadvize-token-broker keeps in AWS Secrets Manager, and
# calls the iAdvize GraphQL API with it. Never logs in to iAdvize. Needs the AWS CLI, jq, curl.
#
# Rules: read AWSCURRENT; cache the token until expires_at minus a margin (here in a private
# directory shared by your runs); when a read fails (throttling, network, access denied), keep
# using the cached token until it actually expires and read again after a backoff, not on
# every run; after a 401, read the secret again once, then give up.
#
# If that read returns the very token iAdvize refused (the broker has not replaced it yet), and
# IADVIZE_REPORT_QUEUE_URL names the broker's report queue, report it there (one SQS message:
# the secret id and the SHA-256 of the token, never the token) and wait, reading again with a
# backoff, up to IADVIZE_REPORT_WAIT_SECONDS (default 30) for the broker's new token. Without
# that setting, say how to enable reports, and give up as before. Reporting needs
# sqs:SendMessage on the queue, nothing else.
#
#   export IADVIZE_TOKEN_SECRET_ID=iadvize/token
#   examples/shell/read-token.sh token     # print the token (TOKEN=$(... token))
#   examples/shell/read-token.sh           # GraphQL { me { username } }
set -euo pipefail
umask 077 # the cache holds a token

secret_id=${IADVIZE_TOKEN_SECRET_ID:?set IADVIZE_TOKEN_SECRET_ID to the token secret name or ARN}
api_url=${IADVIZE_API_URL:-https://api.iadvize.com}
margin=300                                       # read again 5 minutes before expiry
recheck=${IADVIZE_TOKEN_RECHECK_SECONDS:-30}     # a token already inside the margin: read again after this
backoff=${IADVIZE_TOKEN_RETRY_SECONDS:-1}       # after a failed read: wait 1 s, doubling, ...
max_backoff=30                                   # ... at most 30 s
report_queue=${IADVIZE_REPORT_QUEUE_URL:-}       # the broker's report queue (SQS FIFO), if any
report_wait=${IADVIZE_REPORT_WAIT_SECONDS:-30}   # after a report: wait this long for the new token

# A directory of your own, mode 0700: nobody else can create, replace or read what is in it.
# Not a fixed name in a shared /tmp, which another user could create first: mktemp -d makes it
# with a random name, and later runs find it again by owner and mode.
private_dir() {
  [ -d "$1" ] && [ ! -L "$1" ] && [ -O "$1" ] && [ "$(ls -ld "$1" | cut -c1-10)" = drwx------ ]
}
cache_dir() {
  local dir base
  if [ -n "${IADVIZE_TOKEN_CACHE_DIR:-}" ]; then
    dir=$IADVIZE_TOKEN_CACHE_DIR
    [ -e "$dir" ] || mkdir -p -m 700 "$dir"
  else
    base=${XDG_RUNTIME_DIR:-${TMPDIR:-/tmp}}
    for dir in "$base/iadvize-token-$(id -u)".*; do
      private_dir "$dir" && break
    done
    private_dir "$dir" || dir=$(mktemp -d "$base/iadvize-token-$(id -u).XXXXXXXX")
  fi
  if ! private_dir "$dir"; then
    echo "the token cache $dir must be a directory of yours with mode 700 (not a link)" >&2
    return 1
  fi
  printf '%s\n' "$dir"
}
dir=$(cache_dir)
# The cache files are named after the SHA-256 of the secret id: one name per id, whatever
# characters it holds (names may hold /_+=.@-; `team/a` and `team_a` are two secrets) and
# however long it is. Each file also records the id it was written for, and is ignored when
# that is not this run's id.
sha256() { if command -v sha256sum >/dev/null; then sha256sum; else shasum -a 256; fi | cut -d' ' -f1; }
name=$(printf '%s' "$secret_id" | sha256)
cache=$dir/$name.json     # {"secret_id", the record, "arn", "read_again_at"}
failed=$dir/$name.failed  # after a failed read: {"secret_id", "retry_at", "in_a_row", "error"}

# GNU mv -T: never move into a directory that happens to have the target's name.
replace() { if mv --version >/dev/null 2>&1; then mv -f -T "$1" "$2"; else mv -f "$1" "$2"; fi; }

# A field of a cache file ($1: the file, $2: a jq path) if the file was written for this id.
field() { [ -f "$1" ] && jq -er --arg id "$secret_id" "select(.secret_id == \$id) | $2" "$1" 2>/dev/null; }
cached_token() { field "$cache" .access_token; }
# Whether the cached token is due neither for a new read (read_again_at) nor expired.
fresh() { local at; at=$(field "$cache" .read_again_at) && [ "$at" -gt "$(date +%s)" ]; }
expires() { field "$cache" '.expires_at | fromdateiso8601'; }
usable() { local at; at=$(expires) && [ "$at" -gt "$(date +%s)" ]; }
backing_off() { local at; at=$(field "$failed" .retry_at) && [ "$at" -gt "$(date +%s)" ]; }

# The answer when no read is due: prints the token, or the last error during its backoff.
without_reading() {
  if fresh || { backing_off && usable; }; then
    cached_token
  elif backing_off; then
    field "$failed" .error >&2
    return 2
  else
    return 1
  fi
}

# Records a failed read ($1: what went wrong) and prints the cached token if it still works.
read_failed() {
  local in_a_row=1 wait now expires
  now=$(date +%s)
  in_a_row=$(($(field "$failed" .in_a_row || echo 0) + 1))
  wait=$((backoff << (in_a_row - 1)))
  [ "$wait" -le "$max_backoff" ] && [ "$in_a_row" -lt 16 ] || wait=$max_backoff
  if usable; then
    expires=$(expires)
    [ $((now + wait)) -le "$expires" ] || wait=$((expires - now)) # try again at expiry
  fi
  jq -n --arg id "$secret_id" --argjson at $((now + wait)) --argjson n "$in_a_row" --arg error "$1" \
    '{secret_id: $id, retry_at: $at, in_a_row: $n, error: $error}' >"$failed.tmp" && replace "$failed.tmp" "$failed"
  if usable; then
    echo "$1; using the cached token until it expires" >&2
    cached_token
  else
    echo "$1" >&2
    return 1
  fi
}

# One GetSecretValue of AWSCURRENT into the cache.
read_secret() {
  local tmp expires now read_again_at error
  tmp=$(mktemp "$dir/.read.XXXXXX")
  if ! aws secretsmanager get-secret-value --secret-id="$secret_id" --version-stage AWSCURRENT \
    --output json >"$tmp" 2>"$tmp.err"; then
    error="reading $secret_id from Secrets Manager failed: $(tr -s '\n' ' ' <"$tmp.err")"
    rm -f "$tmp" "$tmp.err"
    read_failed "$error"
    return
  fi
  rm -f "$tmp.err"
  # What the secret holds when it is not a token record, in words (never the value).
  case $(jq -r 'if .SecretBinary != null then "binary"
    elif (.SecretString // "" | test("\\S") | not) then "empty"
    else (.SecretString | try (fromjson | "json") catch "text") end' "$tmp" 2>/dev/null) in
  binary) error="secret $secret_id holds binary data (SecretBinary), not a token record; only the broker should write it (run \`iadvize-token refresh --force $secret_id\`)" ;;
  text) error="secret $secret_id holds no token record (the value is not JSON); is the broker running?" ;;
  *) error="secret $secret_id holds no token record yet; is the broker running?" ;;
  esac
  if ! expires=$(jq -er '.SecretString | fromjson | select(.access_token | type == "string" and length > 0) | .expires_at | fromdateiso8601' "$tmp" 2>/dev/null); then
    rm -f "$tmp"
    read_failed "$error"
    return
  fi
  now=$(date +%s)
  if [ "$expires" -le "$now" ]; then
    rm -f "$tmp"
    read_failed "the token in $secret_id has expired; is the broker running?"
    return
  fi
  read_again_at=$((expires - margin))
  if [ "$read_again_at" -le "$now" ]; then
    read_again_at=$((now + recheck < expires ? now + recheck : expires))
  fi
  jq -c --arg id "$secret_id" --argjson at "$read_again_at" \
    '(.ARN // $id) as $arn | .SecretString | fromjson | . + {secret_id: $id, arn: $arn, read_again_at: $at}' \
    "$tmp" >"$tmp.json"
  rm -f "$tmp" "$failed"
  replace "$tmp.json" "$cache"
  cached_token
}

# Sends one rejection report of the token $1 to the report queue; prints why, if it failed.
report() {
  local arn body group error
  # The secret's full ARN, as GetSecretValue answered it: reports name the secret by it,
  # whatever this process names it, so one secret's reports share one message group.
  arn=$(field "$cache" '.arn // empty') || arn=$secret_id
  # The SHA-256 of the token (piped, never on a command line), not the token.
  body=$(jq -cn --arg id "$arn" --arg hash "$(printf '%s' "$1" | sha256)" \
    '{action: "report-rejected", secret_id: $id, token_sha256: $hash}')
  # One message group per token secret, so the broker handles its reports one batch at a time
  # (SQS allows 128 characters: longer ARNs go by their hash).
  group=$arn
  [ "${#group}" -le 128 ] || group=$(printf '%s' "$arn" | sha256)
  # AWS CLI v1 sends SQS calls to its legacy queue.amazonaws.com names unless --endpoint-url
  # is given, whatever AWS_ENDPOINT_URL(_SQS) says (awscli/customizations/overridesslcommonname.py).
  local endpoint=${AWS_ENDPOINT_URL_SQS:-${AWS_ENDPOINT_URL:-}} options=()
  [ -z "$endpoint" ] || options=(--endpoint-url="$endpoint")
  if ! error=$(aws sqs send-message ${options[@]+"${options[@]}"} --queue-url="$report_queue" \
    --message-group-id="$group" --message-body="$body" --cli-connect-timeout 5 \
    --cli-read-timeout 10 --output text --query MessageId 2>&1 >/dev/null); then
    case $error in
    *AccessDenied*) echo "this consumer may not send to it: grant its role sqs:SendMessage on that queue ($(printf '%s' "$error" | tr -s '\n' ' '))" ;;
    *) printf '%s\n' "$error" | tr -s '\n' ' ' ;;
    esac
    return 1
  fi
}

# The secret still holds $1, the token iAdvize refused: report it and print the broker's new
# token once the secret holds it; without a report queue (or if the report fails), say how to
# enable reports and print $1 (the caller gives up as before).
after_rejection() {
  local problem started poll=1 got
  if [ -z "$report_queue" ]; then
    echo "iAdvize refused the token of $secret_id and the secret still holds it: the broker replaces it at its next refresh." \
      "To have it replaced within the minute, let this consumer report it: set IADVIZE_REPORT_QUEUE_URL to the broker's" \
      "report queue URL (an output of the broker's stack) and grant this consumer's role sqs:SendMessage on that queue" >&2
    printf '%s\n' "$1"
    return
  fi
  if ! problem=$(report "$1"); then
    echo "iAdvize refused the token of $secret_id, but the report to $report_queue failed: $problem" >&2
    printf '%s\n' "$1"
    return
  fi
  started=$(date +%s)
  while [ $(($(date +%s) - started)) -lt "$report_wait" ]; do
    sleep "$poll"
    if got=$(read_secret 2>/dev/null) && [ -n "$got" ] && [ "$got" != "$1" ]; then
      printf '%s\n' "$got"
      return
    fi
    poll=$((poll * 2 > 5 ? 5 : poll * 2))
  done
  echo "iAdvize refused the token of $secret_id; it was reported to the broker, but the secret held no new token" \
    "after $report_wait s: either iAdvize accepts the token (the 401 came from elsewhere: permissions, platform)" \
    "or the broker could not replace it (run \`iadvize-token status $secret_id\`)" >&2
  return 1
}

# Prints the token; $1: a token iAdvize just refused (read again at once, never reuse it).
token() {
  local rejected=${1:-} status=0
  if [ -n "$rejected" ] && [ "$(cached_token)" = "$rejected" ]; then
    rm -f "$cache" "$failed"
  fi
  without_reading || status=$?
  [ "$status" = 1 ] || return "$status"
  # One run reads; concurrent runs wait for it, or use a token that still works meanwhile.
  if command -v flock >/dev/null; then
    exec 9>"$dir/$name.lock"
    if ! flock -n 9; then
      if usable; then cached_token && return; fi
      flock 9
    fi
    status=0
    without_reading || status=$?
    [ "$status" = 1 ] || return "$status"
  fi
  local got
  got=$(read_secret) || return
  if [ -n "$rejected" ] && [ "$got" = "$rejected" ]; then
    after_rejection "$rejected"
  else
    printf '%s\n' "$got"
  fi
}

# POST $api_url/graphql with the token (kept off the command line); prints "body\nstatus".
post() {
  printf 'header = "Authorization: Bearer %s"\n' "$1" |
    curl -sS --config - -H 'Content-Type: application/json' --data "$2" \
      -w '\n%{http_code}' "$api_url/graphql"
}

# Prints the GraphQL answer to the query $1; one re-read of the secret after a 401.
graphql() {
  local token answer
  token=$(token)
  answer=$(post "$token" "$(jq -cn --arg q "$1" '{query: $q}')")
  if [ "${answer##*$'\n'}" = 401 ]; then
    token=$(token "$token")
    answer=$(post "$token" "$(jq -cn --arg q "$1" '{query: $q}')")
  fi
  if [ "${answer##*$'\n'}" != 200 ]; then
    echo "iAdvize GraphQL answered HTTP ${answer##*$'\n'}" >&2
    return 1
  fi
  printf '%s\n' "${answer%$'\n'*}"
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  case "${1:-graphql}" in
  token) token ;;
  graphql) graphql '{ me { username } }' | jq -r .data.me.username ;;
  *) echo "usage: $0 [token|graphql]" >&2 && exit 2 ;;
  esac
fi
