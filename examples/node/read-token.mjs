// Reads the iAdvize access token that iadvize-token-broker keeps in AWS Secrets Manager,
// and calls the iAdvize GraphQL API with it. Never logs in to iAdvize.
//
// Rules: read AWSCURRENT; cache the token until expires_at minus a margin (one read per
// process per token lifetime); when a read fails (throttling, network), keep using the cached
// token until it actually expires and read again after a backoff, not on every call; after a
// 401, read the secret again once, then give up.
//
//   IADVIZE_TOKEN_SECRET_ID=iadvize/token node read-token.mjs
import { pathToFileURL } from "node:url";
import { GetSecretValueCommand, SecretsManagerClient } from "@aws-sdk/client-secrets-manager";

const SECRET_ID = process.env.IADVIZE_TOKEN_SECRET_ID;
const API_URL = process.env.IADVIZE_API_URL ?? "https://api.iadvize.com";
const MARGIN_MS = 5 * 60 * 1000; // read again 5 minutes before expiry
// A token already inside the margin (the broker is late): read again after this long.
const RECHECK_MS = Number(process.env.IADVIZE_TOKEN_RECHECK_SECONDS ?? 30) * 1000;
const BACKOFF_MS = 1000; // after a failed read: wait 1 s, doubling, at most 30 s
const MAX_BACKOFF_MS = 30 * 1000;

const secrets = new SecretsManagerClient({}); // region, credentials, AWS_ENDPOINT_URL: the usual chain
let current = null; // { token, expiresAt, readAgainAt }
let failure = null; // { error, inARow, retryAt }: the last read failed
let pending = null; // the read in flight, shared by concurrent callers
export let reads = 0;

async function readSecret() {
  reads += 1;
  const out = await secrets.send(
    new GetSecretValueCommand({ SecretId: SECRET_ID, VersionStage: "AWSCURRENT" }),
  );
  let record;
  try {
    record = JSON.parse(out.SecretString || "{}");
  } catch {
    throw new Error(`secret ${SECRET_ID} holds no token record (the value is not JSON); is the broker running?`); // never echo the value
  }
  const expiresAt = Date.parse(record.expires_at);
  if (!record.access_token || Number.isNaN(expiresAt)) {
    throw new Error(`secret ${SECRET_ID} holds no token record yet; is the broker running?`);
  }
  const now = Date.now();
  if (expiresAt <= now) {
    throw new Error(`the token in ${SECRET_ID} expired at ${record.expires_at}; is the broker running?`);
  }
  const due = expiresAt - MARGIN_MS;
  const readAgainAt = due > now ? due : Math.min(expiresAt, now + RECHECK_MS);
  return { token: record.access_token, expiresAt, readAgainAt };
}

const usable = () => (current && Date.now() < current.expiresAt ? current.token : null);

function readShared() {
  pending ??= readSecret()
    .then((entry) => {
      current = entry;
      failure = null;
      return entry;
    })
    .catch((error) => {
      const inARow = (failure?.inARow ?? 0) + 1;
      let wait = Math.min(BACKOFF_MS * 2 ** (inARow - 1), MAX_BACKOFF_MS) * (1 + Math.random() / 4);
      if (usable()) wait = Math.min(wait, current.expiresAt - Date.now()); // try again at expiry
      failure = { error, inARow, retryAt: Date.now() + wait };
      throw error;
    })
    .finally(() => {
      pending = null;
    });
  return pending;
}

/** The current token. `rejected`: a token iAdvize just refused, to read the secret again. */
export async function getToken(rejected) {
  if (current && current.token === rejected) {
    current = null; // never hand it out again
    failure = null; // and read at once, even during a backoff
  }
  if (current && Date.now() < current.readAgainAt) return current.token;
  if (pending && usable()) return current.token; // a read is under way: no need to wait for it
  if (failure && Date.now() < failure.retryAt) {
    if (usable()) return current.token;
    throw failure.error;
  }
  try {
    return (await readShared()).token;
  } catch (error) {
    // Secrets Manager throttled or unreachable: a token that has not expired still works.
    if (usable()) {
      console.error(`reading ${SECRET_ID} failed (${error.name ?? "error"}: ${error.message}); using the cached token until it expires`);
      return current.token;
    }
    throw error;
  }
}

/** POST {API_URL}/graphql with the token; one re-read of the secret after a 401. */
export async function graphql(query) {
  const post = (token) =>
    fetch(`${API_URL}/graphql`, {
      method: "POST",
      headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/json" },
      body: JSON.stringify({ query }),
    });
  const token = await getToken();
  let response = await post(token);
  if (response.status === 401) response = await post(await getToken(token));
  if (!response.ok) throw new Error(`iAdvize GraphQL answered HTTP ${response.status}`);
  return response.json();
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  // READER_CALLS, READER_PAUSE_MS: how the tests drive it.
  const calls = Number(process.env.READER_CALLS ?? 1);
  const pause = Number(process.env.READER_PAUSE_MS ?? 0);
  for (let i = 0; i < calls; i += 1) {
    if (i > 0 && pause > 0) await new Promise((resolve) => setTimeout(resolve, pause));
    const answer = await graphql("{ me { username } }");
    console.log(answer.data.me.username);
  }
  console.error(`secret reads: ${reads}`);
}
