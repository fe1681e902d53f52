// Checks the EKS recipe's manifests (examples/eks/*.yaml) offline, three ways:
//
// 1. JSON Schema: each document against the schema of its apiVersion/kind, as shipped by
//    @kubernetes-models/external-secrets (generated from the External Secrets Operator's Go API
//    types, external-secrets.io/v1) and kubernetes-models (the Kubernetes OpenAPI): types,
//    required fields, enums, formats.
// 2. Unknown fields: those schemas allow any extra key (as the API server's structural schemas
//    do without strict field validation), so a misspelt field would pass. Each document is
//    also written as a TypeScript literal typed with the packages' interfaces and compiled
//    with `tsc --noEmit`: an unknown key anywhere is an excess-property error.
// 3. The recipe's rules: refreshInterval at most 1h, AWSCURRENT, the Secret mounted as a volume
//    without subPath and never in an environment variable.
// 4. The cross-references: the ExternalSecret's store exists (by kind and name, in its namespace
//    for a SecretStore), the Secret it creates (target.name) is the one the Deployment mounts,
//    in the same namespace, IADVIZE_TOKEN_FILE names a file of that mount, and the service
//    accounts named exist.
//
// Then it proves that each check bites: broken copies of the manifests must be refused.
//
//   cd examples/eks/validate && npm ci && npm run check
//
// YAML is read as YAML 1.1, as Kubernetes reads it (defaultMode: 0440 is octal).
import { execFileSync } from "node:child_process";
import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join, posix } from "node:path";
import { fileURLToPath } from "node:url";
import { parseAllDocuments } from "yaml";

const here = dirname(fileURLToPath(import.meta.url));
const recipe = dirname(here);

// apiVersion/kind → [module of the model, class and interface name].
const MODELS = {
  "v1/ServiceAccount": ["kubernetes-models/v1/ServiceAccount", "ServiceAccount"],
  "apps/v1/Deployment": ["kubernetes-models/apps/v1/Deployment", "Deployment"],
  "external-secrets.io/v1/SecretStore": ["@kubernetes-models/external-secrets/external-secrets.io/v1/SecretStore", "SecretStore"],
  "external-secrets.io/v1/ClusterSecretStore": ["@kubernetes-models/external-secrets/external-secrets.io/v1/ClusterSecretStore", "ClusterSecretStore"],
  "external-secrets.io/v1/ExternalSecret": ["@kubernetes-models/external-secrets/external-secrets.io/v1/ExternalSecret", "ExternalSecret"],
};

function load(file) {
  return parseAllDocuments(readFileSync(join(recipe, file), "utf8"), { version: "1.1" }).map((doc, i) => {
    if (doc.errors.length) throw new Error(`${file} #${i + 1}: ${doc.errors[0].message}`);
    return { where: `${file} #${i + 1}`, body: doc.toJS() };
  });
}

function modelOf({ where, body }) {
  const model = MODELS[`${body?.apiVersion}/${body?.kind}`];
  if (!model) throw new Error(`${where}: no schema for ${body?.apiVersion} ${body?.kind}`);
  return model;
}

async function schemaErrors(docs) {
  const errors = [];
  for (const doc of docs) {
    let model;
    try {
      model = modelOf(doc);
    } catch (error) {
      errors.push(error.message);
      continue;
    }
    const Class = (await import(model[0]))[model[1]];
    try {
      new Class(doc.body).validate();
    } catch (error) {
      errors.push(`${doc.where}: ${error.message}`);
    }
  }
  return errors;
}

// Compiles every set of documents as typed literals, all sets in one run of tsc (it takes
// seconds to start); returns tsc's errors for each set (empty when it compiles).
function unknownFieldErrors(sets) {
  const dir = join(here, ".check");
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir);
  const names = Object.keys(sets);
  names.forEach((name, n) => {
    const lines = [];
    sets[name].forEach((doc, i) => {
      const [module, model] = modelOf(doc);
      lines.push(`import type { I${model} as T${i} } from "${module}";`);
      lines.push(`// ${doc.where}\nexport const doc${i}: T${i} = ${JSON.stringify(doc.body, null, 2)};`);
    });
    writeFileSync(join(dir, `set${n}.mts`), lines.join("\n") + "\n");
  });
  const tsc = join(here, "node_modules/typescript/bin/tsc");
  const args = ["--noEmit", "--strict", "--skipLibCheck", "--module", "nodenext", "--moduleResolution", "nodenext", "--target", "es2022", ...names.map((_, n) => join(dir, `set${n}.mts`))];
  let output = "";
  try {
    execFileSync(process.execPath, [tsc, ...args], { encoding: "utf8", stdio: "pipe" });
  } catch (error) {
    output = error.stdout || error.message;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  const errors = output.split("\n").filter((l) => l.includes("error TS"));
  return Object.fromEntries(names.map((name, n) => [name, errors.filter((l) => l.includes(`set${n}.mts`))]));
}

// Go durations as ESO parses them ("1h", "30m", "1h30m", "90s").
function seconds(duration) {
  const parts = String(duration).match(/^(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$/);
  if (!parts || !duration) return NaN;
  return (Number(parts[1] ?? 0) * 60 + Number(parts[2] ?? 0)) * 60 + Number(parts[3] ?? 0);
}

function ruleErrors(docs) {
  const errors = [];
  const secretNames = new Set();
  for (const { where, body } of docs) {
    if (body.kind === "ExternalSecret") {
      const refresh = seconds(body.spec?.refreshInterval);
      if (!(refresh > 0 && refresh <= 3600)) {
        errors.push(`${where}: refreshInterval ${body.spec?.refreshInterval}: must be set and at most 1h (the token has ≥ ~3 h left when read)`);
      }
      for (const data of body.spec?.data ?? []) {
        if (data.remoteRef?.version !== "AWSCURRENT") errors.push(`${where}: remoteRef.version must be AWSCURRENT`);
      }
      secretNames.add(body.spec?.target?.name ?? body.metadata?.name);
    }
  }
  for (const { where, body } of docs) {
    if (body.kind !== "Deployment") continue;
    const pod = body.spec?.template?.spec ?? {};
    const volumes = (pod.volumes ?? []).filter((v) => secretNames.has(v.secret?.secretName)).map((v) => v.name);
    for (const container of pod.containers ?? []) {
      for (const env of container.env ?? []) {
        if (secretNames.has(env.valueFrom?.secretKeyRef?.name)) {
          errors.push(`${where}: ${container.name} takes the token from an environment variable, which never changes in a running pod`);
        }
      }
      for (const from of container.envFrom ?? []) {
        if (secretNames.has(from.secretRef?.name)) errors.push(`${where}: ${container.name} takes the Secret as environment variables`);
      }
      for (const mount of container.volumeMounts ?? []) {
        if (volumes.includes(mount.name) && mount.subPath) {
          errors.push(`${where}: ${container.name} mounts the Secret with subPath, which never receives updates`);
        }
      }
    }
  }
  return errors;
}

// Kubernetes puts a document without metadata.namespace in the namespace it is applied to;
// the recipe's documents are applied together, so "default" stands for that one namespace.
const namespaceOf = (body) => body.metadata?.namespace ?? "default";

// The cross-references between the documents, resolved as the API server and the External
// Secrets Operator resolve them (ESO's API reference: secretStoreRef.kind defaults to
// SecretStore, target.name to the ExternalSecret's name; a SecretStore serves its own
// namespace only, a ClusterSecretStore every namespace).
function referenceErrors(docs) {
  const errors = [];
  const named = (kind, name, namespace) =>
    docs.find(({ body }) => body.kind === kind && body.metadata?.name === name && (namespace === undefined || namespaceOf(body) === namespace));
  // "namespace/name" of each Secret an ExternalSecret creates → the keys it holds.
  const secrets = new Map();
  for (const { where, body } of docs) {
    if (body.kind !== "ExternalSecret") continue;
    const namespace = namespaceOf(body);
    const ref = body.spec?.secretStoreRef ?? {};
    const kind = ref.kind ?? "SecretStore";
    const store = named(kind, ref.name, kind === "ClusterSecretStore" ? undefined : namespace);
    if (!store) {
      const elsewhere = kind === "SecretStore" && named(kind, ref.name);
      errors.push(
        elsewhere
          ? `${where}: secretStoreRef SecretStore ${ref.name} is in namespace ${namespaceOf(elsewhere.body)}, the ExternalSecret in ${namespace}: a SecretStore serves its own namespace only`
          : `${where}: secretStoreRef ${kind} ${ref.name}${kind === "SecretStore" ? ` (namespace ${namespace})` : ""} is not in these manifests`,
      );
    } else {
      // The service account the store authenticates as: a SecretStore's own namespace; a
      // ClusterSecretStore's serviceAccountRef.namespace, else the ExternalSecret's.
      const account = store.body.spec?.provider?.aws?.auth?.jwt?.serviceAccountRef;
      if (account) {
        const accountNamespace = store.body.kind === "SecretStore" ? namespaceOf(store.body) : (account.namespace ?? namespace);
        if (!named("ServiceAccount", account.name, accountNamespace)) {
          errors.push(`${store.where}: serviceAccountRef ${account.name} (namespace ${accountNamespace}) is not in these manifests`);
        }
      }
    }
    const secretName = body.spec?.target?.name ?? body.metadata?.name;
    secrets.set(`${namespace}/${secretName}`, (body.spec?.data ?? []).map((d) => d.secretKey));
  }
  for (const { where, body } of docs) {
    if (body.kind !== "Deployment") continue;
    const namespace = namespaceOf(body);
    const pod = body.spec?.template?.spec ?? {};
    if (pod.serviceAccountName && !named("ServiceAccount", pod.serviceAccountName, namespace)) {
      errors.push(`${where}: serviceAccountName ${pod.serviceAccountName} (namespace ${namespace}) is not in these manifests`);
    }
    // Volume name → the files a Secret volume shows: each key, or the items' paths.
    const files = new Map();
    for (const volume of pod.volumes ?? []) {
      const keys = secrets.get(`${namespace}/${volume.secret?.secretName}`);
      if (!keys) continue;
      const items = volume.secret.items;
      files.set(volume.name, items ? items.filter((i) => keys.includes(i.key)).map((i) => i.path) : keys);
    }
    if (!files.size) {
      errors.push(`${where}: no volume mounts a Secret an ExternalSecret creates in namespace ${namespace} (Secrets the ExternalSecrets create: ${[...secrets.keys()].join(", ") || "none"})`);
    }
    let readers = 0;
    for (const container of pod.containers ?? []) {
      const tokenFile = (container.env ?? []).find((e) => e.name === "IADVIZE_TOKEN_FILE");
      if (!tokenFile) continue;
      readers += 1;
      const paths = (container.volumeMounts ?? [])
        .filter((m) => files.has(m.name) && !m.subPath)
        .flatMap((m) => files.get(m.name).map((f) => posix.join(m.mountPath, f)));
      if (!paths.includes(tokenFile.value)) {
        errors.push(`${where}: ${container.name}: IADVIZE_TOKEN_FILE ${tokenFile.value} is not a file of the mounted Secret (${paths.join(", ") || "none mounted"})`);
      }
    }
    if (!readers) errors.push(`${where}: no container sets IADVIZE_TOKEN_FILE to the mounted token file`);
  }
  return errors;
}

// The checks of every set of documents (name → documents): name → errors.
async function check(sets) {
  const unknown = unknownFieldErrors(sets);
  const result = {};
  for (const [name, docs] of Object.entries(sets)) {
    result[name] = [...(await schemaErrors(docs)), ...unknown[name], ...ruleErrors(docs), ...referenceErrors(docs)];
  }
  return result;
}

const files = readdirSync(recipe).filter((f) => f.endsWith(".yaml")).sort();
const sets = {};
// Each SecretStore variant with the ExternalSecret and the Deployment: what one applies.
for (const store of files.filter((f) => f.startsWith("secret-store-"))) {
  sets[`${store} + external-secret.yaml + deployment.yaml`] = [store, "external-secret.yaml", "deployment.yaml"].flatMap(load);
}
// The IRSA variant with a ClusterSecretStore instead (serves every namespace; its
// serviceAccountRef names the namespace): must be accepted too, so the namespace rule follows
// the store's kind.
sets["secret-store-irsa.yaml as a ClusterSecretStore + external-secret.yaml + deployment.yaml"] = ["secret-store-irsa.yaml", "external-secret.yaml", "deployment.yaml"]
  .flatMap(load)
  .map(({ where, body }) => {
    if (body.kind === "SecretStore") {
      body.kind = "ClusterSecretStore";
      body.spec.provider.aws.auth.jwt.serviceAccountRef.namespace = body.metadata.namespace;
      delete body.metadata.namespace;
    }
    if (body.kind === "ExternalSecret") body.spec.secretStoreRef.kind = "ClusterSecretStore";
    return { where, body };
  });
const good = Object.keys(sets);

// Broken copies: each must be refused.
const base = ["secret-store-irsa.yaml", "external-secret.yaml", "deployment.yaml"].flatMap(load);
const broken = {
  "a misspelt field (spec.refreshIntervall)": (d) => d.kind === "ExternalSecret" && (d.spec.refreshIntervall = d.spec.refreshInterval),
  "a wrong type (refreshInterval: 3600)": (d) => d.kind === "ExternalSecret" && (d.spec.refreshInterval = 3600),
  "a missing required field (provider.aws.region)": (d) => d.kind === "SecretStore" && delete d.spec.provider.aws.region,
  "a value outside an enum (service: SecretManager)": (d) => d.kind === "SecretStore" && (d.spec.provider.aws.service = "SecretManager"),
  "an unknown field in a container (volumeMount)": (d) => d.kind === "Deployment" && (d.spec.template.spec.containers[0].volumeMount = []),
  "refreshInterval: 24h": (d) => d.kind === "ExternalSecret" && (d.spec.refreshInterval = "24h"),
  "remoteRef.version: AWSPREVIOUS": (d) => d.kind === "ExternalSecret" && (d.spec.data[0].remoteRef.version = "AWSPREVIOUS"),
  "the token in an environment variable": (d) =>
    d.kind === "Deployment" &&
    d.spec.template.spec.containers[0].env.push({ name: "IADVIZE_TOKEN", valueFrom: { secretKeyRef: { name: "iadvize-token", key: "token.json" } } }),
  "a subPath mount": (d) => d.kind === "Deployment" && (d.spec.template.spec.containers[0].volumeMounts[0].subPath = "token.json"),
  "secretStoreRef.name: a store not in the manifests": (d) => d.kind === "ExternalSecret" && (d.spec.secretStoreRef.name = "iadvize-token-brokr"),
  "secretStoreRef.kind: ClusterSecretStore (the store is a SecretStore)": (d) =>
    d.kind === "ExternalSecret" && (d.spec.secretStoreRef.kind = "ClusterSecretStore"),
  "the ExternalSecret in another namespace than its SecretStore and the Deployment": (d) =>
    d.kind === "ExternalSecret" && (d.metadata.namespace = "other-app"),
  "the Deployment in another namespace than the Secret": (d) => d.kind === "Deployment" && (d.metadata.namespace = "other-app"),
  "target.name: a Secret the Deployment does not mount": (d) => d.kind === "ExternalSecret" && (d.spec.target.name = "iadvize-token-v2"),
  "mountPath moved away from IADVIZE_TOKEN_FILE": (d) =>
    d.kind === "Deployment" && (d.spec.template.spec.containers[0].volumeMounts[0].mountPath = "/var/run/secrets/iadvize-token"),
  "IADVIZE_TOKEN_FILE names a key the Secret does not have": (d) =>
    d.kind === "Deployment" && (d.spec.template.spec.containers[0].env.find((e) => e.name === "IADVIZE_TOKEN_FILE").value = "/var/run/secrets/iadvize/token"),
  "serviceAccountName: an account not in the manifests": (d) => d.kind === "Deployment" && (d.spec.template.spec.serviceAccountName = "default"),
  "serviceAccountRef: an account not in the manifests": (d) =>
    d.kind === "SecretStore" && (d.spec.provider.aws.auth.jwt.serviceAccountRef.name = "external-secrets"),
};
for (const [what, breakIt] of Object.entries(broken)) {
  const docs = structuredClone(base);
  docs.forEach((d) => breakIt(d.body));
  sets[what] = docs;
}

const results = await check(sets);
let failed = false;
for (const name of good) {
  const errors = results[name];
  console.log(`${errors.length ? "FAIL" : "ok"}   ${name}: ${sets[name].length} documents (${sets[name].map((d) => d.body.kind).join(", ")})`);
  for (const error of errors) console.log(`       ${error}`);
  failed ||= errors.length > 0;
}
for (const what of Object.keys(broken)) {
  const errors = results[what];
  console.log(`${errors.length ? "ok" : "FAIL"}   refused: ${what}${errors.length ? ` (${errors[0].replace(/\s+/g, " ").slice(0, 110)})` : ": accepted!"}`);
  failed ||= errors.length === 0;
}
console.log(failed ? "examples/eks: check failed" : `examples/eks: ${good.length} manifest sets valid, ${Object.keys(broken).length} broken copies refused`);
process.exit(failed ? 1 : 0);
