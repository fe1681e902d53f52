"""The iAdvize access token through AWS's own caching library, aws-secretsmanager-caching
(`SecretCache`), for services that already use it. Never logs in to iAdvize.

How the library works, and why these settings:

- it finds the AWSCURRENT version with DescribeSecret at most once per
  `secret_refresh_interval` (a random time between half of it and all of it), and reads each
  version's value once with GetSecretValue (needs both permissions; the broker's consumer
  policy grants them);
- the broker replaces the token when less than 4 h remain (hourly ticks), so AWSCURRENT always
  holds a token with at least ~3 h left: a refresh interval of 1 h (the default) or less means
  the cached token always has about 2 h left. Never set it near the token's lifetime;
- when a refresh fails it keeps serving the value it has, and retries with a backoff
  (`exception_retry_delay_base`, growth factor, at most `exception_retry_delay_max`);
- after a 401 from iAdvize: `refresh_secret_now(secret_id)` once (it waits 2.5 to 5 s on
  purpose, then asks DescribeSecret which version is current), read the token again, retry
  the request once; if that is refused too, fail: do not loop, do not log in.

    IADVIZE_TOKEN_SECRET_ID=iadvize/token python read_token_cached.py
"""

import json
import os
import sys
import urllib.error
import urllib.request
from datetime import datetime, timezone

import boto3
from aws_secretsmanager_caching import SecretCache, SecretCacheConfig

SECRET_ID = os.environ.get("IADVIZE_TOKEN_SECRET_ID", "")
API_URL = os.environ.get("IADVIZE_API_URL", "https://api.iadvize.com")

_cache = SecretCache(
    config=SecretCacheConfig(
        secret_refresh_interval=3600,  # ≤ 1 h: the broker keeps ≥ ~3 h on AWSCURRENT
        exception_retry_delay_max=60,  # a failed refresh is retried within a minute, not an hour
    ),
    client=boto3.client("secretsmanager"),  # region, credentials, AWS_ENDPOINT_URL: the usual chain
)


def get_token(secret_id=None):
    """The current token of `secret_id` (default IADVIZE_TOKEN_SECRET_ID) from the cache; fails
    (never echoing the value) if it is unusable. SecretCache keys its entries by the secret id
    exactly as given, so several secrets (`team/a`, `team_a`) share one cache safely."""
    secret_id = secret_id or SECRET_ID
    value = _cache.get_secret_string(secret_id)  # AWSCURRENT
    if value is None and _cache.get_secret_binary(secret_id) is not None:
        raise RuntimeError(
            f"secret {secret_id} holds binary data (SecretBinary), not a token record; "
            f"only the broker should write it (run `iadvize-token refresh --force {secret_id}`)"
        )
    if not isinstance(value, str) or not value.strip():
        raise RuntimeError(f"secret {secret_id} holds no token record yet; is the broker running?")
    try:
        record = json.loads(value)
    except ValueError:
        raise RuntimeError(
            f"secret {secret_id} holds no token record (the value is not JSON); is the broker running?"
        ) from None
    try:
        token = record["access_token"]
        expires_at = datetime.fromisoformat(record["expires_at"].replace("Z", "+00:00"))
        if not isinstance(token, str) or not token:
            raise TypeError
    except (ValueError, KeyError, TypeError, AttributeError):
        raise RuntimeError(f"secret {secret_id} holds no token record yet; is the broker running?") from None
    if expires_at <= datetime.now(timezone.utc):
        # The cache holds an expired token only if refreshing kept failing, or the broker is
        # down: say so rather than call iAdvize with it.
        raise RuntimeError(f"the token in {secret_id} expired at {record['expires_at']}; is the broker running?")
    return token


def graphql(query, secret_id=None):
    """POST {API_URL}/graphql with the token of `secret_id`; one forced refresh of the cache
    after a 401."""
    secret_id = secret_id or SECRET_ID

    def post(token):
        request = urllib.request.Request(
            f"{API_URL}/graphql",
            data=json.dumps({"query": query}).encode(),
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.load(response)

    try:
        return post(get_token(secret_id))
    except urllib.error.HTTPError as error:
        if error.code != 401:
            raise
    # The broker may have replaced the token: one forced refresh, one retry, then give up.
    _cache.refresh_secret_now(secret_id)
    return post(get_token(secret_id))


if __name__ == "__main__":
    # READER_CALLS, READER_SECRET_IDS (several secrets, comma-separated, read in turn by each
    # call): how the tests drive it.
    secret_ids = os.environ["READER_SECRET_IDS"].split(",") if "READER_SECRET_IDS" in os.environ else [SECRET_ID]
    for _ in range(int(os.environ.get("READER_CALLS", "1"))):
        for secret_id in secret_ids:
            print(graphql("{ me { username } }", secret_id)["data"]["me"]["username"], flush=True)
