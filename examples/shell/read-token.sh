#!/usr/bin/env bash
# Reads the iAdvize access token that iadvize-token-broker keeps in AWS Secrets Manager, and
# calls the iAdvize GraphQL API with it. Never logs in to iAdvize. Needs the AWS CLI, jq, curl.
#
# Rules: read AWSCURRENT; cache the token until expires_at minus a margin (here in a file only
# you can read, shared by your runs); after a 401, read the secret again once, then give up.
#
#   export IADVIZE_TOKEN_SECRET_ID=iadvize/token
#   examples/shell/read-token.sh token     # print the token (TOKEN=$(... token))
#   examples/shell/read-token.sh           # GraphQL { me { username } }
set -euo pipefail

secret_id=${IADVIZE_TOKEN_SECRET_ID:?set IADVIZE_TOKEN_SECRET_ID to the token secret name or ARN}
api_url=${IADVIZE_API_URL:-https://api.iadvize.com}
margin=300 # read again 5 minutes before expiry
cache=${IADVIZE_TOKEN_CACHE:-${XDG_RUNTIME_DIR:-${TMPDIR:-/tmp}}/iadvize-token-$(id -u)-${secret_id//[^A-Za-z0-9._-]/_}.json}

# Prints the token, from the cache file while it is fresh; $1: a token iAdvize just refused.
token() {
  local rejected=${1:-} expires tmp
  if [ -f "$cache" ] && [ -O "$cache" ] && expires=$(jq -er '.expires_at | fromdateiso8601' "$cache" 2>/dev/null) &&
    [ $((expires - margin)) -gt "$(date +%s)" ] && [ "$(jq -r .access_token "$cache")" != "$rejected" ]; then
    jq -r .access_token "$cache"
    return
  fi
  tmp=$(mktemp "$cache.XXXXXX") # mode 0600
  aws secretsmanager get-secret-value --secret-id "$secret_id" --version-stage AWSCURRENT \
    --query SecretString --output text >"$tmp"
  if ! expires=$(jq -er 'select(.access_token) | .expires_at | fromdateiso8601' "$tmp" 2>/dev/null); then
    rm -f "$tmp"
    echo "secret $secret_id holds no token record yet; is the broker running?" >&2
    return 1
  fi
  if [ "$expires" -le "$(date +%s)" ]; then
    rm -f "$tmp"
    echo "the token in $secret_id has expired; is the broker running?" >&2
    return 1
  fi
  mv -f "$tmp" "$cache"
  jq -r .access_token "$cache"
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
    answer=$(post "$(token "$token")" "$(jq -cn --arg q "$1" '{query: $q}')")
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
