// Reads the iAdvize access token that iadvize-token-broker keeps in AWS Secrets Manager,
// and calls the iAdvize GraphQL API with it. Never logs in to iAdvize.
//
// Rules: read AWSCURRENT; cache the token until expires_at minus a margin (one read per
// process per token lifetime); when a read fails (throttling, network), keep using the cached
// token until it actually expires and read again after a backoff, not on every call; after a
// 401, read the secret again once, then give up.
//
// If that read returns the very token iAdvize refused (the broker has not replaced it yet), and
// IADVIZE_REPORT_QUEUE_URL names the broker's report queue, report it there (one SQS message:
// the secret id and the SHA-256 of the token, never the token) and wait, reading again with a
// backoff, up to IADVIZE_REPORT_WAIT_SECONDS (default 30) for the broker's new token. Without
// that setting, say once how to enable reports, and give up as before. Reporting needs
// sqs:SendMessage on the queue, nothing else.
//
// One process can read several token secrets (several iAdvize users): pass the secret id to
// getToken/graphql; each secret has its own cache entry.
//
//   IADVIZE_TOKEN_SECRET_ID=iadvize/token node read-token.mjs
import { createHash } from "node:crypto";
import { pathToFileURL } from "node:url";
import { GetSecretValueCommand, SecretsManagerClient } from "@aws-sdk/client-secrets-manager";
import { SendMessageCommand, SQSClient } from "@aws-sdk/client-sqs";

const SECRET_ID = process.env.IADVIZE_TOKEN_SECRET_ID;
const API_URL = process.env.IADVIZE_API_URL ?? "https://api.iadvize.com";
const MARGIN_MS = 5 * 60 * 1000; // read again 5 minutes before expiry
// A token already inside the margin (the broker is late): read again after this long.
const RECHECK_MS = Number(process.env.IADVIZE_TOKEN_RECHECK_SECONDS ?? 30) * 1000;
const BACKOFF_MS = 1000; // after a failed read: wait 1 s, doubling, at most 30 s
const MAX_BACKOFF_MS = 30 * 1000;

const REPORT_QUEUE_URL = process.env.IADVIZE_REPORT_QUEUE_URL?.trim() ?? "";
const REPORT_WAIT_MS = Number(process.env.IADVIZE_REPORT_WAIT_SECONDS ?? 30) * 1000; // wait for the new token
const REPORT_POLL_MS = 1000; // after a report: read again after 1 s, doubling, at most 5 s
const MAX_REPORT_POLL_MS = 5000;

const secrets = new SecretsManagerClient({}); // region, credentials, AWS_ENDPOINT_URL: the usual chain
export let reads = 0;
export let reports = 0;
let saidHint = false;

// One cache entry per token secret, keyed by the id exactly as given: `team/a` and `team_a`
// (two iAdvize users) never share an entry. Each entry records the id it was made for and is
// used only for that id.
const entries = new Map(); // secretId → { secretId, current, failure, pending }
// current: { token, expiresAt, readAgainAt, arn }; failure: { error, inARow, retryAt } (the last
// read failed); pending: the read in flight, shared by concurrent callers of that secret.

function entryFor(secretId) {
  if (typeof secretId !== "string" || secretId === "") {
    throw new Error("no token secret: set IADVIZE_TOKEN_SECRET_ID or pass a secret id");
  }
  let entry = entries.get(secretId);
  if (entry?.secretId !== secretId) {
    entry = { secretId, current: null, failure: null, pending: null };
    entries.set(secretId, entry);
  }
  return entry;
}

// What a secret holds when it is not a token record, in words (never the value).
function notARecord(secretId, out) {
  if (out.SecretBinary !== undefined) {
    return new Error(`secret ${secretId} holds binary data (SecretBinary), not a token record; only the broker should write it (run \`iadvize-token refresh --force ${secretId}\`)`);
  }
  return new Error(`secret ${secretId} holds no token record yet; is the broker running?`);
}

async function readSecret(secretId) {
  reads += 1;
  const out = await secrets.send(
    new GetSecretValueCommand({ SecretId: secretId, VersionStage: "AWSCURRENT" }),
  );
  if (typeof out.SecretString !== "string" || out.SecretString.trim() === "") throw notARecord(secretId, out);
  let record;
  try {
    record = JSON.parse(out.SecretString);
  } catch {
    throw new Error(`secret ${secretId} holds no token record (the value is not JSON); is the broker running?`); // never echo the value
  }
  const expiresAt = Date.parse(record?.expires_at);
  if (typeof record?.access_token !== "string" || !record.access_token || Number.isNaN(expiresAt)) {
    throw notARecord(secretId, out);
  }
  const now = Date.now();
  if (expiresAt <= now) {
    throw new Error(`the token in ${secretId} expired at ${record.expires_at}; is the broker running?`);
  }
  const due = expiresAt - MARGIN_MS;
  const readAgainAt = due > now ? due : Math.min(expiresAt, now + RECHECK_MS);
  // The ARN names the secret in a report, however this process names it.
  return { token: record.access_token, expiresAt, readAgainAt, arn: out.ARN ?? secretId };
}

function sayOnce(message) {
  if (!saidHint) {
    saidHint = true;
    console.error(message);
  }
}

const sha256 = (text) => createHash("sha256").update(text).digest("hex");

// Sends one rejection report of `token`, read from the secret `secretArn` (its full ARN, as
// GetSecretValue answered it), to the report queue; returns an error text, or null.
async function report(secretArn, token) {
  const sqs = new SQSClient({ maxAttempts: 3 });
  const body = JSON.stringify({
    action: "report-rejected",
    secret_id: secretArn,
    token_sha256: sha256(token), // never the token itself
  });
  // One message group per token secret, by its ARN whatever name this process reads it by, so
  // the broker handles one secret's reports one batch at a time (SQS allows 128 characters:
  // longer ARNs go by their hash).
  const group = secretArn.length <= 128 ? secretArn : sha256(secretArn);
  try {
    await sqs.send(
      new SendMessageCommand({ QueueUrl: REPORT_QUEUE_URL, MessageBody: body, MessageGroupId: group }),
      { abortSignal: AbortSignal.timeout(10_000) }, // bounded, whatever the network does
    );
  } catch (error) {
    if (String(error.name).includes("AccessDenied")) {
      return `this consumer may not send to it (${error.name}): grant its role sqs:SendMessage on that queue`;
    }
    return `${error.name ?? "error"}: ${error.message}`;
  } finally {
    sqs.destroy();
  }
  reports += 1;
  return null;
}

// The secret still holds the token iAdvize refused (`current`, as readSecret returns it):
// report it and wait for the broker's new one, or say once how to enable reports and return
// `current` (the same token: the caller gives up as before).
async function afterRejection(secretId, current) {
  if (!REPORT_QUEUE_URL) {
    sayOnce(
      `iAdvize refused the token of ${secretId} and the secret still holds it: the broker replaces it at its next refresh. ` +
        "To have it replaced within the minute, let this consumer report it: set IADVIZE_REPORT_QUEUE_URL to the broker's " +
        "report queue URL (an output of the broker's stack) and grant this consumer's role sqs:SendMessage on that queue",
    );
    return current;
  }
  const problem = await report(current.arn, current.token);
  if (problem) {
    sayOnce(`iAdvize refused the token of ${secretId}, but the report to ${REPORT_QUEUE_URL} failed: ${problem}`);
    return current;
  }
  const started = Date.now();
  let poll = REPORT_POLL_MS;
  while (Date.now() - started < REPORT_WAIT_MS) {
    await new Promise((resolve) => setTimeout(resolve, Math.min(poll, REPORT_WAIT_MS - (Date.now() - started))));
    const again = await readSecret(secretId).catch(() => null); // a failed read: keep waiting
    if (again && again.token !== current.token) return again;
    poll = Math.min(poll * 2, MAX_REPORT_POLL_MS);
  }
  throw new Error(
    `iAdvize refused the token of ${secretId}; it was reported to the broker, but the secret held no new token after ` +
      `${REPORT_WAIT_MS / 1000} s: either iAdvize accepts the token (the 401 came from elsewhere: permissions, platform) ` +
      `or the broker could not replace it (run \`iadvize-token status ${secretId}\`)`,
  );
}

const usable = (entry) => (entry.current && Date.now() < entry.current.expiresAt ? entry.current.token : null);

function readShared(entry, rejected) {
  entry.pending ??= readSecret(entry.secretId)
    .then((current) => (rejected !== undefined && current.token === rejected ? afterRejection(entry.secretId, current) : current))
    .then((current) => {
      entry.current = current;
      entry.failure = null;
      return current;
    })
    .catch((error) => {
      const inARow = (entry.failure?.inARow ?? 0) + 1;
      let wait = Math.min(BACKOFF_MS * 2 ** (inARow - 1), MAX_BACKOFF_MS) * (1 + Math.random() / 4);
      if (usable(entry)) wait = Math.min(wait, entry.current.expiresAt - Date.now()); // try again at expiry
      entry.failure = { error, inARow, retryAt: Date.now() + wait };
      throw error;
    })
    .finally(() => {
      entry.pending = null;
    });
  return entry.pending;
}

/**
 * The current token of `secretId` (default IADVIZE_TOKEN_SECRET_ID). `rejected`: a token
 * iAdvize just refused, to read the secret again.
 */
export async function getToken(rejected, secretId = SECRET_ID) {
  const entry = entryFor(secretId);
  if (entry.current && entry.current.token === rejected) {
    entry.current = null; // never hand it out again
    entry.failure = null; // and read at once, even during a backoff
  }
  if (entry.current && Date.now() < entry.current.readAgainAt) return entry.current.token;
  if (entry.pending && usable(entry)) return entry.current.token; // a read is under way: no need to wait for it
  if (entry.failure && Date.now() < entry.failure.retryAt) {
    if (usable(entry)) return entry.current.token;
    throw entry.failure.error;
  }
  try {
    return (await readShared(entry, rejected)).token;
  } catch (error) {
    // Secrets Manager throttled or unreachable: a token that has not expired still works.
    if (usable(entry)) {
      console.error(`reading ${secretId} failed (${error.name ?? "error"}: ${error.message}); using the cached token until it expires`);
      return entry.current.token;
    }
    throw error;
  }
}

/** POST {API_URL}/graphql with the token of `secretId`; one re-read of the secret after a 401. */
export async function graphql(query, secretId = SECRET_ID) {
  const post = (token) =>
    fetch(`${API_URL}/graphql`, {
      method: "POST",
      headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/json" },
      body: JSON.stringify({ query }),
    });
  const token = await getToken(undefined, secretId);
  let response = await post(token);
  if (response.status === 401) response = await post(await getToken(token, secretId));
  if (!response.ok) throw new Error(`iAdvize GraphQL answered HTTP ${response.status}`);
  return response.json();
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  // READER_CALLS, READER_PAUSE_MS, READER_SECRET_IDS (several secrets, comma-separated, read
  // in turn by each call): how the tests drive it.
  const calls = Number(process.env.READER_CALLS ?? 1);
  const pause = Number(process.env.READER_PAUSE_MS ?? 0);
  const secretIds = process.env.READER_SECRET_IDS?.split(",") ?? [SECRET_ID];
  for (let i = 0; i < calls; i += 1) {
    if (i > 0 && pause > 0) await new Promise((resolve) => setTimeout(resolve, pause));
    for (const secretId of secretIds) {
      const answer = await graphql("{ me { username } }", secretId);
      console.log(answer.data.me.username);
    }
  }
  console.error(`secret reads: ${reads}, reports: ${reports}`);
}
