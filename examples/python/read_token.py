"""Reads the iAdvize access token that iadvize-token-broker keeps in AWS Secrets Manager,
and calls the iAdvize GraphQL API with it. Never logs in to iAdvize.

Rules: read AWSCURRENT; cache the token until expires_at minus a margin (one read per
process per token lifetime); when a read fails (throttling, network), keep using the cached
token until it actually expires and read again after a backoff, not on every call; after a
401, read the secret again once, then give up.

If that read returns the very token iAdvize refused (the broker has not replaced it yet), and
IADVIZE_REPORT_QUEUE_URL names the broker's report queue, report it there (one SQS message:
the secret id and the SHA-256 of the token, never the token) and wait, reading again with a
backoff, up to IADVIZE_REPORT_WAIT_SECONDS (default 30) for the broker's new token. Without
that setting, say once how to enable reports, and give up as before. Reporting needs
sqs:SendMessage on the queue, nothing else.

One process can read several token secrets (several iAdvize users): pass the secret id to
get_token/graphql; each secret has its own cache entry.

    IADVIZE_TOKEN_SECRET_ID=iadvize/token python read_token.py
"""

import hashlib
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
REPORT_QUEUE_URL = os.environ.get("IADVIZE_REPORT_QUEUE_URL", "").strip()
REPORT_WAIT = float(os.environ.get("IADVIZE_REPORT_WAIT_SECONDS", "30"))  # wait for the new token
REPORT_POLL, MAX_REPORT_POLL = 1, 5  # after a report: read again after 1 s, doubling, at most 5 s

_secrets = boto3.client("secretsmanager")  # region, credentials, AWS_ENDPOINT_URL: the usual chain
reads = 0
reports = 0
_said_hint = False


class _Entry:
    """The cache of one token secret. Entries are keyed by the secret id exactly as given, so
    `team/a` and `team_a` (two iAdvize users) never share one; each records its id and is used
    only for that id."""

    def __init__(self, secret_id):
        self.secret_id = secret_id
        self.state = threading.Lock()  # guards cached and failure
        self.reading = threading.Lock()  # one read at a time, shared by concurrent threads
        self.cached = None  # (token, expires_at, read_again_at, arn)
        self.failure = None  # (error, failures_in_a_row, retry_at): the last read failed

    def usable(self):
        """The cached token if it has not expired, even when it is due for a new read."""
        return self.cached[0] if self.cached and time.time() < self.cached[1] else None

    def without_reading(self):
        """(True, token) when no read is due; raises the last error during its backoff."""
        now = time.time()
        if self.cached and now < self.cached[2]:
            return True, self.cached[0]
        if self.failure and now < self.failure[2]:
            if self.usable():
                return True, self.cached[0]
            raise self.failure[0]
        return False, None


_entries = {}  # secret id -> _Entry
_entries_lock = threading.Lock()


def _entry(secret_id):
    if not secret_id:
        raise RuntimeError("no token secret: set IADVIZE_TOKEN_SECRET_ID or pass a secret id")
    with _entries_lock:
        entry = _entries.get(secret_id)
        if entry is None or entry.secret_id != secret_id:
            entry = _entries[secret_id] = _Entry(secret_id)
        return entry


def _not_a_record(secret_id, value):
    """What a secret holds when it is not a token record, in words (never the value)."""
    if value.get("SecretBinary") is not None:
        return RuntimeError(
            f"secret {secret_id} holds binary data (SecretBinary), not a token record; "
            f"only the broker should write it (run `iadvize-token refresh --force {secret_id}`)"
        )
    return RuntimeError(f"secret {secret_id} holds no token record yet; is the broker running?")


def _read_secret(secret_id):
    global reads
    reads += 1
    value = _secrets.get_secret_value(SecretId=secret_id, VersionStage="AWSCURRENT")
    text = value.get("SecretString")
    if not isinstance(text, str) or not text.strip():
        raise _not_a_record(secret_id, value)
    try:
        record = json.loads(text)
    except ValueError:
        # Never echo the value: it may hold a token.
        raise RuntimeError(
            f"secret {secret_id} holds no token record (the value is not JSON); is the broker running?"
        ) from None
    try:
        token = record["access_token"]
        expires_at = datetime.fromisoformat(record["expires_at"].replace("Z", "+00:00")).timestamp()
        if not isinstance(token, str) or not token:
            raise TypeError
    except (ValueError, KeyError, TypeError, AttributeError):
        raise _not_a_record(secret_id, value) from None
    now = time.time()
    if expires_at <= now:
        raise RuntimeError(f"the token in {secret_id} expired at {record['expires_at']}; is the broker running?")
    due = expires_at - MARGIN
    # The ARN names the secret in a report, however this process names it.
    return token, expires_at, (due if due > now else min(expires_at, now + RECHECK)), value.get("ARN", secret_id)


def _say_once(message):
    global _said_hint
    if not _said_hint:
        _said_hint = True
        print(message, file=sys.stderr)


def _report(secret_arn, token):
    """Sends one rejection report of `token` read from `secret_arn` (its full ARN, as
    GetSecretValue answered it) to the report queue; returns an error text, or None."""
    global reports
    import botocore.config

    sqs = boto3.client(
        "sqs",
        config=botocore.config.Config(connect_timeout=5, read_timeout=10, retries={"max_attempts": 3}),
    )
    # Compact, as every other sender writes it: SQS drops a copy only when the bytes match.
    body = json.dumps(
        {
            "action": "report-rejected",
            "secret_id": secret_arn,
            "token_sha256": hashlib.sha256(token.encode()).hexdigest(),  # never the token itself
        },
        separators=(",", ":"),
    )
    # One message group per token secret, by its ARN whatever name this process reads it by, so
    # the broker handles one secret's reports one batch at a time (SQS allows 128 characters:
    # longer ARNs go by their hash).
    group = secret_arn if len(secret_arn) <= 128 else hashlib.sha256(secret_arn.encode()).hexdigest()
    try:
        sqs.send_message(QueueUrl=REPORT_QUEUE_URL, MessageBody=body, MessageGroupId=group)
    except Exception as error:  # access denied, no such queue, network: say it, carry on as before
        code = getattr(error, "response", {}).get("Error", {}).get("Code", "")
        if "AccessDenied" in code:
            return f"this consumer may not send to it ({code}): grant its role sqs:SendMessage on that queue"
        return f"{type(error).__name__}: {error}"
    reports += 1
    return None


def _after_rejection(secret_id, cached):
    """The secret still holds the token iAdvize refused (`cached`, as _read_secret returns it):
    report it and wait for the broker's new one (returned), or say once how to enable reports
    and return `cached` (the same token: the caller gives up as before)."""
    token = cached[0]
    if not REPORT_QUEUE_URL:
        _say_once(
            f"iAdvize refused the token of {secret_id} and the secret still holds it: the broker replaces it at its "
            "next refresh. To have it replaced within the minute, let this consumer report it: set "
            "IADVIZE_REPORT_QUEUE_URL to the broker's report queue URL (an output of the broker's stack) and grant "
            "this consumer's role sqs:SendMessage on that queue"
        )
        return cached
    problem = _report(cached[3], token)
    if problem:
        _say_once(f"iAdvize refused the token of {secret_id}, but the report to {REPORT_QUEUE_URL} failed: {problem}")
        return cached
    started, poll = time.time(), REPORT_POLL
    while time.time() - started < REPORT_WAIT:
        time.sleep(min(poll, max(0, REPORT_WAIT - (time.time() - started))))
        try:
            again = _read_secret(secret_id)
        except Exception:
            again = None  # a failed read: keep waiting
        if again and again[0] != token:
            return again
        poll = min(poll * 2, MAX_REPORT_POLL)
    raise RuntimeError(
        f"iAdvize refused the token of {secret_id}; it was reported to the broker, but the secret held no new token "
        f"after {REPORT_WAIT:g} s: either iAdvize accepts the token (the 401 came from elsewhere: permissions, "
        f"platform) or the broker could not replace it (run `iadvize-token status {secret_id}`)"
    )


def get_token(rejected=None, secret_id=None):
    """The current token of `secret_id` (default IADVIZE_TOKEN_SECRET_ID). `rejected`: a token
    iAdvize just refused, to read the secret again."""
    secret_id = secret_id or SECRET_ID
    entry = _entry(secret_id)
    with entry.state:
        if entry.cached and entry.cached[0] == rejected:
            entry.cached, entry.failure = None, None  # never hand it out again; read at once
        done, token = entry.without_reading()
        if done:
            return token
    if not entry.reading.acquire(blocking=False):
        with entry.state:
            if entry.usable():  # a read is under way: no need to wait for it
                return entry.cached[0]
        entry.reading.acquire()
    try:
        with entry.state:
            done, token = entry.without_reading()  # another thread may have just read
            if done:
                return token
        try:
            cached = _read_secret(secret_id)
            if rejected is not None and cached[0] == rejected:
                cached = _after_rejection(secret_id, cached)
        except Exception as error:
            with entry.state:
                in_a_row = entry.failure[1] + 1 if entry.failure else 1
                wait = min(BACKOFF * 2 ** (in_a_row - 1), MAX_BACKOFF) * (1 + random.random() / 4)
                if entry.usable():
                    wait = min(wait, entry.cached[1] - time.time())  # try again at expiry
                entry.failure = (error, in_a_row, time.time() + wait)
                if entry.usable():
                    # Secrets Manager throttled or unreachable: a token that has not expired works.
                    print(f"reading {secret_id} failed ({error}); using the cached token until it expires", file=sys.stderr)
                    return entry.cached[0]
            raise
        with entry.state:
            entry.cached, entry.failure = cached, None
            return cached[0]
    finally:
        entry.reading.release()


def graphql(query, secret_id=None):
    """POST {API_URL}/graphql with the token of `secret_id`; one re-read of the secret after a 401."""

    def post(token):
        request = urllib.request.Request(
            f"{API_URL}/graphql",
            data=json.dumps({"query": query}).encode(),
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.load(response)

    token = get_token(secret_id=secret_id)
    try:
        return post(token)
    except urllib.error.HTTPError as error:
        if error.code != 401:
            raise
    return post(get_token(rejected=token, secret_id=secret_id))


if __name__ == "__main__":
    # READER_CALLS, READER_PAUSE_MS, READER_SECRET_IDS (several secrets, comma-separated, read
    # in turn by each call): how the tests drive it.
    secret_ids = os.environ["READER_SECRET_IDS"].split(",") if "READER_SECRET_IDS" in os.environ else [SECRET_ID]
    for call in range(int(os.environ.get("READER_CALLS", "1"))):
        if call:
            time.sleep(float(os.environ.get("READER_PAUSE_MS", "0")) / 1000)
        for secret_id in secret_ids:
            print(graphql("{ me { username } }", secret_id)["data"]["me"]["username"], flush=True)
    print(f"secret reads: {reads}, reports: {reports}", file=sys.stderr)
