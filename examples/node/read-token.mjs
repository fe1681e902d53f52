// Reads the iAdvize access token that iadvize-token-broker keeps in AWS Secrets Manager,
// and calls the iAdvize GraphQL API with it. Never logs in to iAdvize.
//
// Rules: read AWSCURRENT; cache the token until expires_at minus a margin (one read per
// process per token lifetime); after a 401, read the secret again once, then give up.
//
//   IADVIZE_TOKEN_SECRET_ID=iadvize/token node read-token.mjs
import { pathToFileURL } from "node:url";
import { GetSecretValueCommand, SecretsManagerClient } from "@aws-sdk/client-secrets-manager";

const SECRET_ID = process.env.IADVIZE_TOKEN_SECRET_ID;
const API_URL = process.env.IADVIZE_API_URL ?? "https://api.iadvize.com";
const MARGIN_MS = 5 * 60 * 1000; // read again 5 minutes before expiry
const RECHECK_MS = 30 * 1000; // a token already inside the margin: read again after 30 s

const secrets = new SecretsManagerClient({}); // region, credentials, AWS_ENDPOINT_URL: the usual chain
let current = null; // { token, readAgainAt }
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
  return { token: record.access_token, readAgainAt: due > now ? due : Math.min(expiresAt, now + RECHECK_MS) };
}

/** The current token. `rejected`: a token iAdvize just refused, to read the secret again. */
export async function getToken(rejected) {
  if (current && current.token !== rejected && Date.now() < current.readAgainAt) return current.token;
  pending ??= readSecret()
    .then((entry) => (current = entry))
    .finally(() => { pending = null; });
  return (await pending).token;
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
  const calls = Number(process.env.READER_CALLS ?? 1);
  for (let i = 0; i < calls; i += 1) {
    const answer = await graphql("{ me { username } }");
    console.log(answer.data.me.username);
  }
  console.error(`secret reads: ${reads}`);
}
