"""Reads the iAdvize access token that iadvize-token-broker keeps in AWS Secrets Manager,
and calls the iAdvize GraphQL API with it. Never logs in to iAdvize.

Rules: read AWSCURRENT; cache the token until expires_at minus a margin (one read per
process per token lifetime); after a 401, read the secret again once, then give up.

    IADVIZE_TOKEN_SECRET_ID=iadvize/token python read_token.py
"""

import json
import os
import sys
import threading
import time
import urllib.error
import urllib.request
from datetime import datetime

import boto3

SECRET_ID = os.environ.get("IADVIZE_TOKEN_SECRET_ID", "")
API_URL = os.environ.get("IADVIZE_API_URL", "https://api.iadvize.com")
MARGIN = 5 * 60  # read again 5 minutes before expiry
RECHECK = 30  # a token already inside the margin: read again after 30 s

_secrets = boto3.client("secretsmanager")  # region, credentials, AWS_ENDPOINT_URL: the usual chain
_lock = threading.Lock()  # one read for concurrent threads
_cached = None  # (token, read_again_at)
reads = 0


def _read_secret():
    global reads
    reads += 1
    value = _secrets.get_secret_value(SecretId=SECRET_ID, VersionStage="AWSCURRENT")
    try:
        record = json.loads(value.get("SecretString") or "{}")
        token = record["access_token"]
        expires_at = datetime.fromisoformat(record["expires_at"].replace("Z", "+00:00")).timestamp()
    except (ValueError, KeyError, TypeError, AttributeError):
        # Never echo the value: it may hold a token.
        raise RuntimeError(f"secret {SECRET_ID} holds no token record yet; is the broker running?") from None
    now = time.time()
    if expires_at <= now:
        raise RuntimeError(f"the token in {SECRET_ID} expired at {record['expires_at']}; is the broker running?")
    due = expires_at - MARGIN
    return token, (due if due > now else min(expires_at, now + RECHECK))


def get_token(rejected=None):
    """The current token. `rejected`: a token iAdvize just refused, to read the secret again."""
    global _cached
    with _lock:
        if _cached is None or _cached[0] == rejected or time.time() >= _cached[1]:
            _cached = _read_secret()
        return _cached[0]


def graphql(query):
    """POST {API_URL}/graphql with the token; one re-read of the secret after a 401."""

    def post(token):
        request = urllib.request.Request(
            f"{API_URL}/graphql",
            data=json.dumps({"query": query}).encode(),
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.load(response)

    token = get_token()
    try:
        return post(token)
    except urllib.error.HTTPError as error:
        if error.code != 401:
            raise
    return post(get_token(rejected=token))


if __name__ == "__main__":
    for _ in range(int(os.environ.get("READER_CALLS", "1"))):
        print(graphql("{ me { username } }")["data"]["me"]["username"], flush=True)
    print(f"secret reads: {reads}", file=sys.stderr)
