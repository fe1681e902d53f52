"""Reads the iAdvize access token that iadvize-token-broker keeps in AWS Secrets Manager,
and calls the iAdvize GraphQL API with it. Never logs in to iAdvize.

Rules: read AWSCURRENT; cache the token until expires_at minus a margin (one read per
process per token lifetime); when a read fails (throttling, network), keep using the cached
token until it actually expires and read again after a backoff, not on every call; after a
401, read the secret again once, then give up.

    IADVIZE_TOKEN_SECRET_ID=iadvize/token python read_token.py
"""

import json
import os
import random
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
# A token already inside the margin (the broker is late): read again after this long.
RECHECK = float(os.environ.get("IADVIZE_TOKEN_RECHECK_SECONDS", "30"))
BACKOFF, MAX_BACKOFF = 1, 30  # after a failed read: wait 1 s, doubling, at most 30 s

_secrets = boto3.client("secretsmanager")  # region, credentials, AWS_ENDPOINT_URL: the usual chain
_state = threading.Lock()  # guards _cached and _failure
_reading = threading.Lock()  # one read at a time, shared by concurrent threads
_cached = None  # (token, expires_at, read_again_at)
_failure = None  # (error, failures_in_a_row, retry_at): the last read failed
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
    return token, expires_at, (due if due > now else min(expires_at, now + RECHECK))


def _usable():
    """The cached token if it has not expired, even when it is due for a new read."""
    return _cached[0] if _cached and time.time() < _cached[1] else None


def _without_reading():
    """(True, token) when no read is due; raises the last error during its backoff."""
    now = time.time()
    if _cached and now < _cached[2]:
        return True, _cached[0]
    if _failure and now < _failure[2]:
        if _usable():
            return True, _cached[0]
        raise _failure[0]
    return False, None


def get_token(rejected=None):
    """The current token. `rejected`: a token iAdvize just refused, to read the secret again."""
    global _cached, _failure
    with _state:
        if _cached and _cached[0] == rejected:
            _cached, _failure = None, None  # never hand it out again; read at once
        done, token = _without_reading()
        if done:
            return token
    if not _reading.acquire(blocking=False):
        with _state:
            if _usable():  # a read is under way: no need to wait for it
                return _cached[0]
        _reading.acquire()
    try:
        with _state:
            done, token = _without_reading()  # another thread may have just read
            if done:
                return token
        try:
            entry = _read_secret()
        except Exception as error:
            with _state:
                in_a_row = _failure[1] + 1 if _failure else 1
                wait = min(BACKOFF * 2 ** (in_a_row - 1), MAX_BACKOFF) * (1 + random.random() / 4)
                if _usable():
                    wait = min(wait, _cached[1] - time.time())  # try again at expiry
                _failure = (error, in_a_row, time.time() + wait)
                if _usable():
                    # Secrets Manager throttled or unreachable: a token that has not expired works.
                    print(f"reading {SECRET_ID} failed ({error}); using the cached token until it expires", file=sys.stderr)
                    return _cached[0]
            raise
        with _state:
            _cached, _failure = entry, None
            return entry[0]
    finally:
        _reading.release()


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
    # READER_CALLS, READER_PAUSE_MS: how the tests drive it.
    for call in range(int(os.environ.get("READER_CALLS", "1"))):
        if call:
            time.sleep(float(os.environ.get("READER_PAUSE_MS", "0")) / 1000)
        print(graphql("{ me { username } }")["data"]["me"]["username"], flush=True)
    print(f"secret reads: {reads}", file=sys.stderr)
