#!/usr/bin/env bash
# Applies the example Terraform root modules against moto, each the way a user would:
#   basic     the downloaded-zip path (local_existing_package = a release asset's file name),
#             with the defaults, in an account whose Lambda concurrency quota is 10 (a new
#             account: moto's MOTO_LAMBDA_CONCURRENCY_QUOTA), where any reservation fails;
#             first applied with the module of an earlier release (UPGRADE_FROM, a git ref),
#             then upgraded: the plan from that state to this module destroys nothing;
#   complete  every option: package from a versioned S3 object, KMS keys, replica, two
#             integrations found by tag, alarm topics, role path + permissions boundary, then
#             bring-your-own role, VPC, encrypted log group, reserved concurrency 1 (in an
#             account with room for it) (native rotation: see below).
# For each: checks what was created (tags, environment, reserved concurrency, code hash...),
# runs one real refresh tick of the broker binary against the secrets Terraform created,
# checks the tokens landed, checks that a second plan is empty (the broker's state tags are
# not drift), then destroys everything.
#
# Run from the repository root (make test-infra-apply does). Environment:
#   MOTO_ENDPOINT     moto server to use; unset = start one from $MOTO_SERVER on a free port per
#                     example (with the account concurrency quota of that example)
#   MOTO_SERVER       moto_server executable          (default .venv/bin/moto_server)
#   PYTHON            python with boto3               (default .venv/bin/python)
#   TF_CLI_CONFIG_FILE terraform CLI config (provider mirror), as written by infra/infra.mk
#   BROKER_BIN        broker binary                   (default target/debug/iadvize-token-broker)
#   LAMBDA_INVOKE_BIN Runtime API harness             (default target/debug/lambda-invoke)
#   STANDIN_BIN       local iAdvize stand-in          (default target/debug/iadvize-standin)
#   UPGRADE_FROM      git ref of the module to upgrade from (default: the commit of release
#                     0.1.0's module, before the report queue; empty = skip)
set -euo pipefail

EXAMPLES_DIR=infra/terraform/examples
MOTO_SERVER=${MOTO_SERVER:-.venv/bin/moto_server}
PYTHON=${PYTHON:-.venv/bin/python}
BROKER_BIN=${BROKER_BIN:-target/debug/iadvize-token-broker}
LAMBDA_INVOKE_BIN=${LAMBDA_INVOKE_BIN:-target/debug/lambda-invoke}
STANDIN_BIN=${STANDIN_BIN:-target/debug/iadvize-standin}
UPGRADE_FROM=${UPGRADE_FROM-ecc59eb604741d33a82841ebc8f4b36e39b7aa32}
REGION=us-east-1

export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing
export AWS_REGION=$REGION AWS_DEFAULT_REGION=$REGION
export TF_IN_AUTOMATION=1 TF_INPUT=0
unset AWS_PROFILE AWS_SESSION_TOKEN

pass() { echo "PASS: $*"; }
fail() { echo "FAIL: $*" >&2; exit 1; }
step() { echo "---- [$(date +%T)] $*"; }

[ -f "$EXAMPLES_DIR/basic/main.tf" ] || fail "run from the repository root ($EXAMPLES_DIR/basic/main.tf not found)"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/infra-apply.XXXXXX")
MOTO_PID=""
STANDIN_PID=""
APPLIED=0

# Each example root module runs from a copy in $WORK/<example> (state, .terraform and lock
# file stay out of the work tree); only its module source is made absolute. EXAMPLE names the
# current one, and $WORK/<example>.vars holds its -var arguments, one a line.
EXAMPLE=""
tf() { terraform -chdir="$WORK/$EXAMPLE" "$@"; }
tf_vars() { cat "$WORK/$EXAMPLE.vars"; }

cleanup() {
  local rc=$?
  set +e
  if [ "$APPLIED" = 1 ]; then
    echo "---- cleanup: terraform destroy"
    mapfile -t vars < <(tf_vars)
    tf destroy -auto-approve -no-color "${vars[@]}" >"$WORK/destroy-cleanup.log" 2>&1 ||
      { echo "cleanup destroy failed:"; tail -n 20 "$WORK/destroy-cleanup.log"; }
  fi
  [ -n "$STANDIN_PID" ] && kill "$STANDIN_PID" 2>/dev/null && wait "$STANDIN_PID" 2>/dev/null
  [ -n "$MOTO_PID" ] && kill "$MOTO_PID" 2>/dev/null && wait "$MOTO_PID" 2>/dev/null
  if [ "$rc" -eq 0 ]; then
    rm -rf "$WORK"
    echo "PASS: infra apply against moto"
  else
    rm -rf "$WORK"/*/.terraform # the provider (hundreds of MB); the logs stay
    echo "FAIL: infra apply against moto (logs kept in $WORK)" >&2
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

http_up() {
  "$PYTHON" -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=2)' "$1" 2>/dev/null
}

free_port() {
  "$PYTHON" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# ---- preconditions -----------------------------------------------------------------------
command -v terraform >/dev/null || fail "terraform not on PATH"
[ -x "$PYTHON" ] || fail "$PYTHON not found (make the lead's .venv first)"
for bin in "$BROKER_BIN" "$LAMBDA_INVOKE_BIN" "$STANDIN_BIN"; do
  [ -x "$bin" ] || fail "$bin not built (cargo build --workspace --bins)"
done

# ---- moto --------------------------------------------------------------------------------
# start_moto QUOTA: a fresh moto (one per example) whose account has this Lambda concurrency
# quota; moto then refuses a reservation that leaves less than its minimum unreserved.
OWN_MOTO=0
[ -z "${MOTO_ENDPOINT:-}" ] && OWN_MOTO=1
start_moto() {
  if [ "$OWN_MOTO" = 0 ]; then
    echo "using moto at $MOTO_ENDPOINT (its concurrency quota is whatever it was started with)"
    return
  fi
  [ -x "$MOTO_SERVER" ] || fail "MOTO_ENDPOINT unset and $MOTO_SERVER not found"
  if [ -n "$MOTO_PID" ]; then
    kill "$MOTO_PID" 2>/dev/null && wait "$MOTO_PID" 2>/dev/null
    MOTO_PID=""
  fi
  port=$(free_port)
  # AWS managed policies (AWSLambdaVPCAccessExecutionRole) exist only when loaded.
  MOTO_IAM_LOAD_MANAGED_POLICIES=true MOTO_LAMBDA_CONCURRENCY_QUOTA=$1 \
    "$MOTO_SERVER" -H 127.0.0.1 -p "$port" >"$WORK/moto-$1.log" 2>&1 &
  MOTO_PID=$!
  MOTO_ENDPOINT=http://127.0.0.1:$port
  for _ in $(seq 1 100); do
    http_up "$MOTO_ENDPOINT/moto-api/" && break
    kill -0 "$MOTO_PID" 2>/dev/null || fail "moto server died: $(tail -n 5 "$WORK/moto-$1.log")"
    sleep 0.1
  done
  http_up "$MOTO_ENDPOINT/moto-api/" || fail "moto server did not start on $MOTO_ENDPOINT"
  echo "started moto at $MOTO_ENDPOINT (account concurrency quota $1)"
  export MOTO_ENDPOINT
}

# A unique prefix per run: the moto server may be shared with other tests.
RUN=itb-$(date +%s)-$$
USER_PASS=apply-test-$(date +%s%N)

# ---- stand-ins every example needs -------------------------------------------------------
# moto stores the package but never runs it: a stub zip, named like a release asset, is
# enough; the tick runs the real binary locally behind the Runtime API harness.
mkdir -p "$WORK/downloads"
ZIP="$WORK/downloads/iadvize-token-broker-0.1.0-x86_64.zip"
"$PYTHON" - "$ZIP" <<'PY'
import sys, zipfile
with zipfile.ZipFile(sys.argv[1], "w") as z:
    info = zipfile.ZipInfo("bootstrap")
    info.external_attr = 0o755 << 16
    z.writestr(info, "#!/bin/sh\necho 'stub: the test runs the real binary locally'\nexit 1\n")
PY

# Users of the built-in integrations and of the fleet's: one stand-in serves them all.
step "start the iAdvize stand-in"
"$STANDIN_BIN" --port 0 \
  --user "basic-user@example.com:$USER_PASS" --user "main-user@example.com:$USER_PASS" \
  --user "shop-user@example.com:$USER_PASS" --user "support-user@example.com:$USER_PASS" \
  >"$WORK/standin.log" 2>"$WORK/standin.err" &
STANDIN_PID=$!
STANDIN_URL=""
for _ in $(seq 1 300); do
  STANDIN_URL=$(head -n 1 "$WORK/standin.log" | sed -n 's/^listening on \(http:[^ ]*\).*/\1/p')
  [ -n "$STANDIN_URL" ] && break
  kill -0 "$STANDIN_PID" 2>/dev/null || fail "stand-in exited: $(cat "$WORK/standin.err")"
  sleep 0.1
done
[ -n "$STANDIN_URL" ] || fail "stand-in banner not seen: $(head -n 1 "$WORK/standin.log")"
echo "stand-in at $STANDIN_URL"

cat >"$WORK/event.json" <<'JSON'
{"version":"0","id":"5d7a1c5e-1b1c-4f5e-9a53-0a3c2f1b9e11","detail-type":"Scheduled Event","source":"aws.events","account":"123456789012","time":"2026-11-26T12:00:00Z","region":"us-east-1","resources":["arn:aws:events:us-east-1:123456789012:rule/x"],"detail":{}}
JSON

py() { "$PYTHON" - "$MOTO_ENDPOINT" "$@"; }
out() { "$PYTHON" -c 'import json,sys; print(json.dumps(json.load(open(sys.argv[1]))[sys.argv[2]]["value"]))' "$WORK/$EXAMPLE.outputs.json" "$1"; }
raw() { "$PYTHON" -c 'import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]]["value"])' "$WORK/$EXAMPLE.outputs.json" "$1"; }

# ---- steps shared by the examples ---------------------------------------------------------
tf_apply() {
  mapfile -t vars < <(tf_vars)
  tf apply -auto-approve -no-color "${vars[@]}" >"$WORK/$EXAMPLE.apply.log" 2>&1 ||
    { tail -n 40 "$WORK/$EXAMPLE.apply.log"; fail "$EXAMPLE: terraform apply against moto"; }
  grep -E '^Apply complete' "$WORK/$EXAMPLE.apply.log"
  tf output -json >"$WORK/$EXAMPLE.outputs.json"
}

start_example() {
  EXAMPLE=$1
  mkdir "$WORK/$EXAMPLE"
  cp "$EXAMPLES_DIR/$EXAMPLE"/*.tf "$WORK/$EXAMPLE/"
  sed -i "s|source = \"../..\"|source = \"$(cd "$EXAMPLES_DIR/../" && pwd)\"|" "$WORK/$EXAMPLE/main.tf"
  grep -q "source = \"/" "$WORK/$EXAMPLE/main.tf" || fail "could not point $EXAMPLE at the module"
  step "$EXAMPLE: terraform init + apply"
  tf init -backend=false -input=false -no-color >"$WORK/$EXAMPLE.init.log" 2>&1 ||
    { tail -n 30 "$WORK/$EXAMPLE.init.log"; fail "$EXAMPLE: terraform init"; }
  APPLIED=1
  tf_apply
  pass "$EXAMPLE: terraform apply against moto"
}

# put_credentials SECRET USER
put_credentials() {
  py "$1" "$2" "$USER_PASS" <<'PY' || fail "put credentials into $1"
import json, sys, boto3
endpoint, secret, user, password = sys.argv[1:]
sm = boto3.client("secretsmanager", endpoint_url=endpoint, region_name="us-east-1",
                  aws_access_key_id="testing", aws_secret_access_key="testing")
sm.put_secret_value(SecretId=secret, SecretString=json.dumps({"username": user, "password": password}))
PY
}

# tick FUNCTION_ENV_JSON EXPECTED_SECRET...: one scheduled tick with the function's own
# environment (from Terraform's output), pointed at moto and the stand-in. Every secret
# named must be reported refreshed; any other secret reported (found by tag, once the
# broker discovers) must be refreshed too.
tick() {
  local env_json=$1; shift
  local env_args=()
  while IFS= read -r kv; do env_args+=(--env "$kv"); done < <("$PYTHON" -c '
import json, sys
for k, v in json.loads(sys.argv[1]).items():
    if k != "IADVIZE_API_URL":
        print(f"{k}={v}")' "$env_json")
  set +e
  "$LAMBDA_INVOKE_BIN" --bin "$BROKER_BIN" \
    --env "AWS_ENDPOINT_URL=$MOTO_ENDPOINT" --env "AWS_ACCESS_KEY_ID=testing" \
    --env "AWS_SECRET_ACCESS_KEY=testing" --env "AWS_REGION=$REGION" \
    --env "IADVIZE_API_URL=$STANDIN_URL" "${env_args[@]}" \
    --logs "$WORK/$EXAMPLE.tick.log" \
    "$WORK/event.json" >"$WORK/$EXAMPLE.tick.out" 2>"$WORK/$EXAMPLE.tick.err"
  local rc=$?
  set -e
  echo "tick response: $(tr -d '\n ' <"$WORK/$EXAMPLE.tick.out")"
  [ "$rc" -eq 0 ] || { tail -n 30 "$WORK/$EXAMPLE.tick.err" "$WORK/$EXAMPLE.tick.log"; fail "$EXAMPLE: lambda-invoke exited $rc"; }
  ! grep -qF "$USER_PASS" "$WORK/$EXAMPLE.tick.log" "$WORK/$EXAMPLE.tick.out" ||
    fail "$EXAMPLE: the password appears in the function's output"
  "$PYTHON" - "$WORK/$EXAMPLE.tick.out" "$@" <<'PY' || { tail -n 30 "$WORK/$EXAMPLE.tick.log"; fail "$EXAMPLE: tick response"; }
import json, sys
results = json.load(open(sys.argv[1]))["results"]
expected = set(sys.argv[2:])
seen = {r["secret_id"]: r for r in results}
missing = expected - seen.keys()
assert not missing, f"not managed by the tick: {missing}; results: {results}"
bad = [r for r in results if r["outcome"] != "refreshed" or not r.get("expires_at")]
assert not bad, f"not refreshed: {bad}"
extra = sorted(seen.keys() - expected)
print(f"refreshed: {sorted(expected)}" + (f"; also (found by tag): {extra}" if extra else ""))
PY
}

# token_written SECRET...: AWSCURRENT is a token record, no AWSPENDING, state tag written.
token_written() {
  py "$USER_PASS" "$@" <<'PY' || fail "$EXAMPLE: token secret content"
import json, sys, datetime, boto3
endpoint, password, *secrets = sys.argv[1:]
sm = boto3.client("secretsmanager", endpoint_url=endpoint, region_name="us-east-1",
                  aws_access_key_id="testing", aws_secret_access_key="testing")
for secret in secrets:
    # Ask for AWSCURRENT explicitly (moto may return a stale version without a stage).
    v = sm.get_secret_value(SecretId=secret, VersionStage="AWSCURRENT")
    rec = json.loads(v["SecretString"])
    assert rec.get("access_token"), f"{secret}: no access_token"
    exp = datetime.datetime.fromisoformat(rec["expires_at"].replace("Z", "+00:00"))
    assert exp > datetime.datetime.now(datetime.timezone.utc), f"{secret}: expires_at in the past: {exp}"
    assert password not in v["SecretString"], f"{secret}: password leaked into the token secret"
    d = sm.describe_secret(SecretId=secret)
    stages = d["VersionIdsToStages"]
    assert not any("AWSPENDING" in s for s in stages.values()), f"{secret}: rotation left pending: {stages}"
    # The broker's state tag is there, so the empty plan below really proves it is not drift.
    tags = {t["Key"]: t["Value"] for t in d.get("Tags", [])}
    assert "iadvize:last-login-attempt" in tags, f"{secret}: no iadvize:last-login-attempt tag: {tags}"
    print(f"{secret}: AWSCURRENT holds a token record, expires_at={rec['expires_at']}")
PY
}

plan_is_empty() {
  mapfile -t vars < <(tf_vars)
  tf plan -no-color -out="$WORK/$EXAMPLE.after-tick.plan" "${vars[@]}" >"$WORK/$EXAMPLE.plan.log" 2>&1 ||
    { tail -n 30 "$WORK/$EXAMPLE.plan.log"; fail "$EXAMPLE: terraform plan failed"; }
  tf show -json "$WORK/$EXAMPLE.after-tick.plan" >"$WORK/$EXAMPLE.plan.json"
  "$PYTHON" - "$WORK/$EXAMPLE.plan.json" <<'PY' || { grep -E 'will be|must be' "$WORK/$EXAMPLE.plan.log" | head -n 30; fail "$EXAMPLE: plan after the tick wants changes"; }
import json, sys
plan = json.load(open(sys.argv[1]))
bad = []
for rc in plan.get("resource_changes", []):
    actions = rc["change"]["actions"]
    if actions in (["no-op"], ["read"]):
        continue
    before, after = rc["change"].get("before") or {}, rc["change"].get("after") or {}
    changed = sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))
    # moto (5.2) does not store a Lambda function's LoggingConfig, so Terraform always
    # wants to set it again; that is the stand-in's gap, not drift of the module.
    if rc["type"] == "aws_lambda_function" and actions == ["update"] and changed == ["logging_config"]:
        print(f"note: {rc['address']}: {changed} not kept by moto (known moto gap)")
        continue
    bad.append(f"{rc['address']} {actions} {changed}")
if bad:
    print("changes planned after the tick:\n  " + "\n  ".join(bad), file=sys.stderr)
    sys.exit(1)
PY
  pass "$EXAMPLE: a new plan changes nothing (the broker's state tags are not drift)"
}

destroy_example() {
  step "$EXAMPLE: terraform destroy"
  mapfile -t vars < <(tf_vars)
  tf destroy -auto-approve -no-color "${vars[@]}" >"$WORK/$EXAMPLE.destroy.log" 2>&1 ||
    { tail -n 40 "$WORK/$EXAMPLE.destroy.log"; fail "$EXAMPLE: terraform destroy"; }
  APPLIED=0
  grep -E '^Destroy complete' "$WORK/$EXAMPLE.destroy.log"
  local left
  left=$(tf state list 2>/dev/null | grep -v '^data\.' || true)
  [ -z "$left" ] || fail "$EXAMPLE: resources left in state after destroy: $left"
  rm -rf "${WORK:?}/$EXAMPLE/.terraform"
  pass "$EXAMPLE: terraform destroy"
}

# between_ticks FUNCTION ROLE_ARN module|own TIMEOUT READERS_JSON: the report queue and its mapping, the
# credentials-changed rules (their patterns matched against the documented Secrets Manager events by moto's
# EventBridge pattern matcher), the follow-up permission, the consumer policy, the dashboard,
# the new settings; with readers, the token secret's resource policy, the key policy and
# the queue policy that let them in.
between_ticks() {
  py "$@" "$WORK/$EXAMPLE.outputs.json" <<'PY' || fail "$EXAMPLE: reports, credentials rules, follow-ups, dashboard"
import json, sys, boto3
from moto.events.models import EventPattern
endpoint, function, role_arn, whose_role, timeout, readers, outputs = sys.argv[1:]
readers = json.loads(readers)
outputs = {k: v["value"] for k, v in json.load(open(outputs)).items()}
kw = dict(endpoint_url=endpoint, region_name="us-east-1",
          aws_access_key_id="testing", aws_secret_access_key="testing")
lam, sqs, iam = boto3.client("lambda", **kw), boto3.client("sqs", **kw), boto3.client("iam", **kw)
events, cw, sm = boto3.client("events", **kw), boto3.client("cloudwatch", **kw), boto3.client("secretsmanager", **kw)
conf = lam.get_function_configuration(FunctionName=function)
fn_arn, env = conf["FunctionArn"], conf["Environment"]["Variables"]
for k, v in {"IADVIZE_REPORT_VERIFY_INTERVAL": "1m", "IADVIZE_MAX_FOLLOW_UPS": "10", "IADVIZE_THROTTLE_PAUSE": "60s"}.items():
    assert env.get(k) == v, (k, env.get(k), v)
as_list = lambda v: v if isinstance(v, list) else [v]
def doc(d):
    return json.loads(d) if isinstance(d, str) else d

# The queue: FIFO, content-based deduplication, encrypted, visibility six function timeouts.
url = outputs["report_queue_url"]
attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
assert attrs["FifoQueue"] == "true" and attrs["ContentBasedDeduplication"] == "true", attrs
assert attrs["SqsManagedSseEnabled"] == "true", attrs
assert int(attrs["VisibilityTimeout"]) == 6 * int(timeout) == 6 * conf["Timeout"], (attrs["VisibilityTimeout"], timeout)
queue_arn = attrs["QueueArn"]
assert len(queue_arn.split(":")[-1]) <= 80 and queue_arn.endswith(".fifo"), queue_arn
# The mapping: this queue to this function, small batches, at most 2 concurrent, no partial batches.
# (moto's ListEventSourceMappings ignores a FunctionName filter given as a name: filter here.)
maps = [m for m in lam.list_event_source_mappings()["EventSourceMappings"] if m["FunctionArn"] == fn_arn]
assert len(maps) == 1, maps
m = maps[0]
assert m["EventSourceArn"] == queue_arn and m["FunctionArn"] == fn_arn, m
assert m["BatchSize"] <= 10 and m.get("ScalingConfig", {}).get("MaximumConcurrency") == 2, m
assert not m.get("FunctionResponseTypes"), m
# The queue policy: TLS only; a role you bring polls through it; readers may send.
qpol = doc(sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["Policy"])["Attributes"]["Policy"])
sids = {s["Sid"]: s for s in qpol["Statement"]}
assert sids["DenyInsecureTransport"]["Effect"] == "Deny", sids
if whose_role == "own":
    polls = sids["ExecutionRolePolls"]
    assert polls["Principal"] == {"AWS": role_arn} and sorted(as_list(polls["Action"])) == ["sqs:DeleteMessage", "sqs:GetQueueAttributes", "sqs:ReceiveMessage"], polls
else:
    assert "ExecutionRolePolls" not in sids, sids
if readers:
    send = sids["CrossAccountReports"]
    assert sorted(as_list(send["Principal"]["AWS"])) == sorted(readers) and as_list(send["Action"]) == ["sqs:SendMessage"], send
else:
    assert "CrossAccountReports" not in sids, sids
# The role's policy: polls this queue, invokes this function and nothing else.
role_name = role_arn.rsplit("/", 1)[1]
pol = doc(iam.get_role_policy(RoleName=role_name, PolicyName="broker")["PolicyDocument"])
by_sid = {s["Sid"]: s for s in pol["Statement"]}
assert as_list(by_sid["FollowUps"]["Resource"]) == [fn_arn] and as_list(by_sid["FollowUps"]["Action"]) == ["lambda:InvokeFunction"], by_sid["FollowUps"]
assert as_list(by_sid["ReportQueuePoller"]["Resource"]) == [queue_arn], by_sid["ReportQueuePoller"]
assert not any("lambda:" in json.dumps(s["Action"]) for sid, s in by_sid.items() if sid != "FollowUps"), pol
# Consumers: sqs:SendMessage on this queue only.
cpol_arn = outputs["consumer_policy_arn"]
cpol = doc(iam.get_policy_version(PolicyArn=cpol_arn, VersionId=iam.get_policy(PolicyArn=cpol_arn)["Policy"]["DefaultVersionId"])["PolicyVersion"]["Document"])
sqs_st = [s for s in cpol["Statement"] if "sqs:" in json.dumps(s["Action"])]
assert [(as_list(s["Action"]), as_list(s["Resource"])) for s in sqs_st] == [(["sqs:SendMessage"], [queue_arn])], sqs_st

# The credentials rules, targeting the function with a permission scoped to each rule.
lam_pol = doc(lam.get_policy(FunctionName=function)["Policy"])["Statement"]
rules = {r["Name"]: r for r in events.list_rules(NamePrefix=f"{function}-credentials-")["Rules"]}
want_rules = {f"{function}-credentials-changed"} | ({f"{function}-credentials-api-calls"} if "credentials_rule_arns" in outputs and "api-calls" in outputs["credentials_rule_arns"] else set())
assert set(rules) == want_rules, (sorted(rules), sorted(want_rules))
for name, r in rules.items():
    targets = events.list_targets_by_rule(Rule=name)["Targets"]
    assert [t["Arn"] for t in targets] == [fn_arn], targets
    assert any(s.get("Principal") in ({"Service": "events.amazonaws.com"}, "events.amazonaws.com")
               and r["Arn"] in json.dumps(s.get("Condition", {})) for s in lam_pol), (name, lam_pol)
creds = outputs.get("credentials_secret_arn")
region, account = "us-east-1", "123456789012"
def label_event(arn, label="AWSCURRENT"):
    return {"version": "0", "id": "6a7e8feb-b491-4cf7-a9f1-bf3703467718", "detail-type": "Secret Label Updated",
            "source": "aws.secretsmanager", "account": account, "time": "2026-11-30T10:00:00Z", "region": region,
            "resources": [arn], "detail": {"name": arn.split(":secret:")[1][:-7], "labelUpdated": label, "versionId": "v1"}}
def api_event(name, secret_id, error=None):
    detail = {"eventSource": "secretsmanager.amazonaws.com", "eventName": name, "requestParameters": {"secretId": secret_id}}
    if error:
        detail["errorCode"] = error
    return {"version": "0", "id": "1", "detail-type": "AWS API Call via CloudTrail", "source": "aws.secretsmanager",
            "account": account, "time": "2026-11-30T10:00:00Z", "region": region, "resources": [], "detail": detail}
changed = EventPattern.load(rules[f"{function}-credentials-changed"]["EventPattern"])
prefix = json.loads(rules[f"{function}-credentials-changed"]["EventPattern"]).get("resources")
outside = f"arn:aws:secretsmanager:{region}:{account}:secret:elsewhere/db-AbCdEf"
assert changed.matches_event(label_event(creds)), "the built-in credentials secret's AWSCURRENT move is missed"
assert not changed.matches_event(label_event(creds, "custom")), "a custom label must not match"
assert not changed.matches_event(dict(label_event(creds), **{"detail-type": "Secret Rotation Succeeded"}))
if prefix:
    inside = f"arn:aws:secretsmanager:{region}:{account}:secret:{function}/new/credentials-AbCdEf"
    assert changed.matches_event(label_event(inside)), "a secret under fleet_name_prefix is missed"
    assert not changed.matches_event(label_event(outside)), "a secret outside fleet_name_prefix matches"
else:
    assert changed.matches_event(label_event(outside)), "without a prefix every secret's move matches"
if f"{function}-credentials-api-calls" in rules:
    api = EventPattern.load(rules[f"{function}-credentials-api-calls"]["EventPattern"])
    for name in ("PutSecretValue", "UpdateSecret", "UpdateSecretVersionStage"):
        assert api.matches_event(api_event(name, creds)), name
        assert api.matches_event(api_event(name, f"{function}/shop/credentials")), (name, "a name under the prefix")
        assert not api.matches_event(api_event(name, creds, error="AccessDenied")), (name, "failed calls")
    assert not api.matches_event(api_event("GetSecretValue", creds)), "reads must not match"
    assert not api.matches_event(api_event("PutSecretValue", "elsewhere/db")), "outside the prefix"
# The dashboard: the broker's metrics, this function and this queue.
name = outputs.get("dashboard_name")
if name is not None:
    body = json.loads(cw.get_dashboard(DashboardName=name)["DashboardBody"])
    series = {tuple(x for x in m if isinstance(x, str)) for w in body["widgets"] for m in w["properties"]["metrics"]}
    for metric in ("MinSecondsUntilExpiry", "SecretsRefreshed", "SecretsFailed", "SecretsDeferred", "ReportBodiesIgnored", "FollowUpsSent"):
        assert ("IadvizeTokenBroker", metric) in series, (metric, series)
    searches = {x["expression"] for w in body["widgets"] for m in w["properties"]["metrics"]
                for x in m if isinstance(x, dict) and "expression" in x}
    for metric in ("LoginAttempts", "RejectionReports"):
        assert f"SEARCH('{{IadvizeTokenBroker,Outcome}} MetricName=\"{metric}\"', 'Sum', 300)" in searches, (metric, searches)
    for metric in ("Invocations", "Errors", "Throttles"):
        assert ("AWS/Lambda", metric, "FunctionName", function) in series, (metric, series)
    assert ("AWS/SQS", "NumberOfMessagesSent", "QueueName", queue_arn.split(":")[-1]) in series, series
# Readers in other accounts: the token secret's resource policy and the key policy let them in.
token = outputs["token_secret_arn"]
if readers:
    rp = doc(sm.get_resource_policy(SecretId=token)["ResourcePolicy"])
    st = rp["Statement"]
    assert len(st) == 1 and sorted(as_list(st[0]["Principal"]["AWS"])) == sorted(readers), st
    assert sorted(as_list(st[0]["Action"])) == ["secretsmanager:DescribeSecret", "secretsmanager:GetSecretValue"], st
    key = outputs["kms_key_arn"]
    assert sm.describe_secret(SecretId=token)["KmsKeyId"] == key, sm.describe_secret(SecretId=token).get("KmsKeyId")
    kms = boto3.client("kms", **kw)
    kp = doc(kms.get_key_policy(KeyId=key, PolicyName="default")["Policy"])
    cross = [s for s in kp["Statement"] if s.get("Sid") == "CrossAccountReadersDecryptViaSecretsManager"][0]
    assert sorted(as_list(cross["Principal"]["AWS"])) == sorted(readers), cross
    assert cross["Condition"] == {"StringEquals": {"kms:ViaService": "secretsmanager.us-east-1.amazonaws.com"}}, cross
    assert kms.get_key_rotation_status(KeyId=key)["KeyRotationEnabled"], "key rotation"
else:
    assert not sm.get_resource_policy(SecretId=token).get("ResourcePolicy"), "no resource policy without readers"
print(f"queue {queue_arn.split(':')[-1]}: FIFO, deduplicated, SSE, visibility {attrs['VisibilityTimeout']} s; mapping batch "
      f"{m['BatchSize']}, max concurrency 2; role polls it and invokes only {function}; consumers send only; "
      f"rules {sorted(rules)} match the documented events (moto's matcher); dashboard {name}; "
      + (f"readers {readers}: resource policy, key policy, queue policy" if readers else "no cross-account readers"))
PY
}

# upgrade_example: the current example's state was applied with an earlier module; point it
# at this module, plan, and fail on any destroy or replacement (an existing deployment must
# upgrade in place: its secrets hold the credentials and the token consumers read); then
# apply the upgrade.
upgrade_example() {
  step "$EXAMPLE: upgrade from $UPGRADE_FROM to this module: plan"
  rm -f "$WORK/$EXAMPLE"/*.tf
  cp "$EXAMPLES_DIR/$EXAMPLE"/*.tf "$WORK/$EXAMPLE/"
  sed -i "s|source = \"../..\"|source = \"$(cd "$EXAMPLES_DIR/../" && pwd)\"|" "$WORK/$EXAMPLE/main.tf"
  tf init -backend=false -input=false -no-color >"$WORK/$EXAMPLE.init-upgrade.log" 2>&1 ||
    { tail -n 30 "$WORK/$EXAMPLE.init-upgrade.log"; fail "$EXAMPLE: terraform init after the upgrade"; }
  mapfile -t vars < <(tf_vars)
  tf plan -no-color -out="$WORK/$EXAMPLE.upgrade.plan" "${vars[@]}" >"$WORK/$EXAMPLE.upgrade-plan.log" 2>&1 ||
    { tail -n 30 "$WORK/$EXAMPLE.upgrade-plan.log"; fail "$EXAMPLE: terraform plan of the upgrade"; }
  tf show -json "$WORK/$EXAMPLE.upgrade.plan" >"$WORK/$EXAMPLE.upgrade-plan.json"
  "$PYTHON" - "$WORK/$EXAMPLE.upgrade-plan.json" <<'PY' || { grep -E 'will be|must be' "$WORK/$EXAMPLE.upgrade-plan.log" | head -n 40; fail "$EXAMPLE: the upgrade would destroy resources"; }
import collections, json, sys
plan = json.load(open(sys.argv[1]))
changes = [rc for rc in plan.get("resource_changes", []) if rc["mode"] == "managed"]
destroyed = [f"{rc['address']} {rc['change']['actions']}" for rc in changes if "delete" in rc["change"]["actions"]]
moved = sorted(f"{rc['previous_address']} -> {rc['address']}" for rc in changes if rc.get("previous_address"))
counts = collections.Counter("+".join(rc["change"]["actions"]) for rc in changes)
print(f"upgrade plan: {dict(counts)}")
print("moved: " + ("; ".join(moved) if moved else "nothing"))
assert not destroyed, "the upgrade destroys or replaces:\n  " + "\n  ".join(destroyed)
# The resources that became optional keep their state through the moved blocks.
for address in ("aws_cloudwatch_event_rule.tick[0]", "aws_cloudwatch_metric_alarm.token_expiry[0]"):
    assert any(m.endswith("." + address) for m in moved), f"{address} was not moved: {moved}"
PY
  pass "$EXAMPLE: the plan from $UPGRADE_FROM's module to this one destroys and replaces nothing"
  tf_apply
  pass "$EXAMPLE: upgrade applied"
}

# ==== basic: the downloaded-zip path ======================================================
# A new account: concurrency quota 10, so any reservation fails.
start_moto 10
printf '%s\n' "-var=aws_endpoint_url=$MOTO_ENDPOINT" "-var=name=$RUN-basic" \
  "-var=package=$ZIP" "-var=recovery_window_in_days=0" >"$WORK/basic.vars"
if [ -n "$UPGRADE_FROM" ] && ! git rev-parse -q --verify "$UPGRADE_FROM^{commit}" >/dev/null 2>&1; then
  # A full clone has the commit: missing there is an error. A shallow clone or an export
  # without history cannot run this check at all: say so loudly and go on without it.
  if [ "$(git rev-parse --is-shallow-repository 2>/dev/null || echo no-git)" = false ]; then
    fail "UPGRADE_FROM=$UPGRADE_FROM is not a commit here"
  fi
  echo "SKIPPED: the upgrade check needs commit $UPGRADE_FROM, which this checkout does not have (shallow clone or no git history); run it in a full clone"
  UPGRADE_FROM=
fi
if [ -n "$UPGRADE_FROM" ]; then
  # The earlier module and its example, as a user of that release has them.
  mkdir "$WORK/old"
  git archive "$UPGRADE_FROM" infra/terraform | tar -x -C "$WORK/old"
  CURRENT_EXAMPLES_DIR=$EXAMPLES_DIR
  EXAMPLES_DIR="$WORK/old/infra/terraform/examples"
  start_example basic
  EXAMPLES_DIR=$CURRENT_EXAMPLES_DIR
  pass "basic: applied with the module of $UPGRADE_FROM"
  upgrade_example
else
  echo "UPGRADE_FROM empty: no upgrade check"
  start_example basic
fi
TOKEN_SECRET=$(raw token_secret_name)
CREDENTIALS_SECRET=$(raw credentials_secret_arn)
FUNCTION=$(raw function_name)
echo "token secret: $TOKEN_SECRET; credentials secret: $CREDENTIALS_SECRET; function: $FUNCTION"

py "$TOKEN_SECRET" "$CREDENTIALS_SECRET" "$FUNCTION" "$ZIP" <<'PY' || fail "basic: created resources"
import base64, hashlib, sys, boto3
endpoint, token, creds, function, zip_path = sys.argv[1:]
kw = dict(endpoint_url=endpoint, region_name="us-east-1",
          aws_access_key_id="testing", aws_secret_access_key="testing")
sm = boto3.client("secretsmanager", **kw)
d = sm.describe_secret(SecretId=token)
tags = {t["Key"]: t["Value"] for t in d.get("Tags", [])}
assert tags.get("iadvize:credentials-secret-id") == creds, f"credentials tag: {tags}"
# Created without a value: consumers must never read a placeholder as a token.
assert not d.get("VersionIdsToStages"), f"token secret has versions: {d.get('VersionIdsToStages')}"
lam = boto3.client("lambda", **kw)
conf = lam.get_function_configuration(FunctionName=function)
env = conf["Environment"]["Variables"]
assert env["IADVIZE_TOKEN_SECRET_IDS"] == token, env
assert env["IADVIZE_CREDENTIALS_SECRET_ID"] == creds, env
# The downloaded zip is what was deployed.
want = base64.b64encode(hashlib.sha256(open(zip_path, "rb").read()).digest()).decode()
assert conf["CodeSha256"] == want, (conf["CodeSha256"], want)
rc = lam.get_function_concurrency(FunctionName=function).get("ReservedConcurrentExecutions")
assert rc is None, f"the default deploy reserves concurrency {rc}: a quota-10 account refuses it"
print("token secret empty and tagged; env names both secrets; code = the downloaded zip; no reserved concurrency")
PY
pass "basic: token secret created empty and tagged; function deployed from the downloaded zip, no reserved concurrency"
between_ticks "$FUNCTION" "$(raw role_arn)" module 120 '[]'
pass "basic: report queue, mapping, credentials rule, follow-up permission, dashboard"

if [ "$OWN_MOTO" = 1 ]; then
  # The quota is in force: the reservation the option asks for is refused here, with the
  # message infra/README.md quotes (moto's minimum is 100; AWS says [10] at a quota of 10).
  py "$FUNCTION" <<'PY' || fail "basic: a reservation should fail in a quota-10 account"
import sys, boto3, botocore
endpoint, function = sys.argv[1:]
lam = boto3.client("lambda", endpoint_url=endpoint, region_name="us-east-1",
                   aws_access_key_id="testing", aws_secret_access_key="testing")
try:
    lam.put_function_concurrency(FunctionName=function, ReservedConcurrentExecutions=1)
except botocore.exceptions.ClientError as e:
    msg = e.response["Error"]["Message"]
    assert "decreases account's UnreservedConcurrentExecution below its minimum value" in msg, msg
    print(f"refused as on AWS: {msg}")
else:
    raise AssertionError("moto accepted a reservation at quota 10: the check above proves nothing")
PY
  pass "basic: the quota-10 account refuses a reservation, and the default deploy needs none"
fi

# Readers in other accounts without a customer-managed key: the plan must refuse them (another
# account cannot decrypt a secret under aws/secretsmanager).
step "cross_account_readers without a customer-managed key: the plan refuses them"
mkdir "$WORK/refuse"
cat >"$WORK/refuse/main.tf" <<HCL
provider "aws" {
  region                      = "$REGION"
  access_key                  = "testing"
  secret_key                  = "testing"
  skip_credentials_validation = true
  skip_requesting_account_id  = true
  skip_metadata_api_check     = true
  endpoints {
    cloudwatch     = "$MOTO_ENDPOINT"
    cloudwatchlogs = "$MOTO_ENDPOINT"
    eventbridge    = "$MOTO_ENDPOINT"
    iam            = "$MOTO_ENDPOINT"
    kms            = "$MOTO_ENDPOINT"
    lambda         = "$MOTO_ENDPOINT"
    secretsmanager = "$MOTO_ENDPOINT"
    sns            = "$MOTO_ENDPOINT"
    sqs            = "$MOTO_ENDPOINT"
    sts            = "$MOTO_ENDPOINT"
  }
}
module "broker" {
  source                 = "$(cd "$EXAMPLES_DIR/../" && pwd)"
  name                   = "$RUN-refuse"
  local_existing_package = "$ZIP"
  cross_account_readers  = ["111122223333"]
}
HCL
terraform -chdir="$WORK/refuse" init -backend=false -input=false -no-color >"$WORK/refuse.init.log" 2>&1 ||
  { tail -n 20 "$WORK/refuse.init.log"; fail "refuse: terraform init"; }
if terraform -chdir="$WORK/refuse" plan -no-color >"$WORK/refuse.plan.log" 2>&1; then
  fail "a plan with cross_account_readers and no customer-managed key succeeded"
fi
grep -q "cross_account_readers need a customer-managed KMS key" "$WORK/refuse.plan.log" ||
  { tail -n 20 "$WORK/refuse.plan.log"; fail "the plan failed, but not with the customer-managed key message"; }
pass "cross_account_readers without a customer-managed key: refused at plan"

# Both create_kms_key and kms_key_arn: the module would use its own key and ignore the ARN.
# Same provider and module source, so the initialised folder plans it without another init.
step "create_kms_key = true with kms_key_arn: the plan refuses the pair"
sed -i 's/^  cross_account_readers .*$/  create_kms_key         = true\n  kms_key_arn            = "arn:aws:kms:'"$REGION"':123456789012:key\/00000000-0000-0000-0000-000000000000"/' \
  "$WORK/refuse/main.tf"
grep -q '^  kms_key_arn ' "$WORK/refuse/main.tf" || fail "refuse: main.tf was not rewritten for the key pair"
if terraform -chdir="$WORK/refuse" plan -no-color >"$WORK/refuse-kms.plan.log" 2>&1; then
  fail "a plan with both create_kms_key = true and kms_key_arn succeeded"
fi
grep -q "Set either create_kms_key = true or kms_key_arn, not both" "$WORK/refuse-kms.plan.log" ||
  { tail -n 20 "$WORK/refuse-kms.plan.log"; fail "the plan failed, but not with the one-key message"; }
rm -rf "$WORK/refuse/.terraform"
pass "create_kms_key = true with kms_key_arn: refused at plan"

put_credentials "$CREDENTIALS_SECRET" basic-user@example.com
step "basic: refresh tick (scheduled event) through $LAMBDA_INVOKE_BIN"
tick "$(out function_environment)" "$TOKEN_SECRET"
token_written "$TOKEN_SECRET"
pass "basic: tick reported refreshed; AWSCURRENT is a token record; state tag written"
plan_is_empty
destroy_example

# ==== complete: every option ===============================================================
# An account with room for a reservation (AWS's default quota, 1000).
start_moto 1000
step "complete: what the account already has (bucket, keys, topic, boundary, network, secret)"
py "$RUN" "$ZIP" >"$WORK/complete.vars" <<'PY' || fail "complete: prerequisites in moto"
import json, sys, boto3
endpoint, run, zip_path = sys.argv[1:]
kw = dict(endpoint_url=endpoint, region_name="us-east-1",
          aws_access_key_id="testing", aws_secret_access_key="testing")
s3 = boto3.client("s3", **kw)
bucket = f"{run}-artifacts".lower()
s3.create_bucket(Bucket=bucket)
s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
key = "iadvize-token-broker/iadvize-token-broker-0.1.0-arm64.zip"
version = s3.put_object(Bucket=bucket, Key=key, Body=open(zip_path, "rb").read())["VersionId"]
kms = boto3.client("kms", **kw)
secrets_key = kms.create_key(Description="secrets")["KeyMetadata"]["Arn"]
logs_key = kms.create_key(Description="logs")["KeyMetadata"]["Arn"]
fleet_key = kms.create_key(Description="fleet")["KeyMetadata"]["Arn"]
topic = boto3.client("sns", **kw).create_topic(Name=f"{run}-pager")["TopicArn"]
boundary = boto3.client("iam", **kw).create_policy(
    PolicyName=f"{run}-boundary",
    PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": ["secretsmanager:*", "logs:*", "kms:*", "ec2:*",
         "sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes", "lambda:InvokeFunction"], "Resource": "*"}]}),
)["Policy"]["Arn"]
ec2 = boto3.client("ec2", **kw)
vpc = ec2.create_vpc(CidrBlock="10.42.0.0/16")["Vpc"]["VpcId"]
subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.42.1.0/24")["Subnet"]["SubnetId"]
sg = ec2.create_security_group(VpcId=vpc, GroupName=f"{run}-broker", Description="broker")["GroupId"]
creds = boto3.client("secretsmanager", **kw).create_secret(
    Name=f"{run}-complete/main/credentials", KmsKeyId=secrets_key)["ARN"]
for arg in [
    f"-var=aws_endpoint_url={endpoint}", f"-var=name={run}-complete", "-var=recovery_window_in_days=0",
    f"-var=package_s3_bucket={bucket}", f"-var=package_s3_key={key}",
    f"-var=package_s3_object_version={version}",
    f"-var=kms_key_arn={secrets_key}", f"-var=log_kms_key_arn={logs_key}",
    f"-var=fleet_kms_key_arns=[\"{fleet_key}\"]",
    "-var=replica_regions={\"us-west-2\"=null}",
    f"-var=alarm_topic_arns=[\"{topic}\"]", "-var=alarm_email=ops@example.com",
    f"-var=permissions_boundary_arn={boundary}",
    f"-var=subnet_ids=[\"{subnet}\"]", f"-var=security_group_ids=[\"{sg}\"]",
    f"-var=credentials_secret_arn={creds}",
    "-var=reserved_concurrent_executions=1",
    # Readers in two other accounts (the module's own key: the example's default).
    "-var=cross_account_readers=[\"111122223333\", \"arn:aws:iam::444455556666:role/token-reader\"]",
    # moto's RotateSecret fails on a secret with no value yet, and the provider retries it
    # until its timeout: native rotation (and its SourceArn-scoped permission, checked by
    # tests/infra_drift.rs) is left out of the apply.
    "-var=enable_native_rotation=false",
]:
    print(arg)
PY
grep -o 'package_s3_object_version=.*' "$WORK/complete.vars"
start_example complete
TOKEN_SECRET=$(raw token_secret_name)
FUNCTION=$(raw function_name)
INTEGRATIONS=$(out integrations)
echo "token secret: $TOKEN_SECRET; function: $FUNCTION"
echo "integrations: $INTEGRATIONS"

py "$FUNCTION" "$TOKEN_SECRET" "$INTEGRATIONS" "$ZIP" "$(out alarm_arns)" "$(raw role_name)" "$WORK/complete.vars" <<'PY' || fail "complete: created resources"
import base64, hashlib, json, sys, boto3
endpoint, function, token, integrations, zip_path, alarm_arns, role_name, vars_file = sys.argv[1:]
given = dict(l.strip()[len("-var="):].split("=", 1) for l in open(vars_file))
kw = dict(endpoint_url=endpoint, region_name="us-east-1",
          aws_access_key_id="testing", aws_secret_access_key="testing")
sm = boto3.client("secretsmanager", **kw)
lam = boto3.client("lambda", **kw)
conf = lam.get_function_configuration(FunctionName=function)
want = base64.b64encode(hashlib.sha256(open(zip_path, "rb").read()).digest()).decode()
assert conf["CodeSha256"] == want, ("code is not the S3 release zip", conf["CodeSha256"], want)
assert conf["Architectures"] == ["arm64"], conf["Architectures"]
assert conf["MemorySize"] == 256 and conf["Timeout"] == 180, conf
assert lam.get_function_concurrency(FunctionName=function).get("ReservedConcurrentExecutions") == 1
assert conf.get("VpcConfig", {}).get("SubnetIds") == json.loads(given["subnet_ids"]), conf.get("VpcConfig")
env = conf["Environment"]["Variables"]
for k, v in {"IADVIZE_TOKEN_SECRET_IDS": token, "IADVIZE_MAX_CONCURRENCY": "8",
             "IADVIZE_REFUSED_CREDENTIALS_RETRY": "6h", "IADVIZE_MAX_LOGINS_PER_MINUTE": "30",
             "IADVIZE_PER_SECRET_METRICS": "false",
             "IADVIZE_CREDENTIALS_SECRET_ID": given["credentials_secret_arn"]}.items():
    assert env.get(k) == v, (k, env.get(k), v)
iam = boto3.client("iam", **kw)
role = iam.get_role(RoleName=role_name)["Role"]
assert role["Path"] == "/service-roles/", role["Path"]
assert role.get("PermissionsBoundary", {}).get("PermissionsBoundaryArn") == given["permissions_boundary_arn"], role
attached = [p["PolicyArn"] for p in iam.list_attached_role_policies(RoleName=role_name)["AttachedPolicies"]]
assert any(a.endswith("/AWSLambdaVPCAccessExecutionRole") for a in attached), attached
policy = iam.get_role_policy(RoleName=role_name, PolicyName="broker")["PolicyDocument"]
if isinstance(policy, str):
    policy = json.loads(policy)
sids = {s["Sid"]: s for s in policy["Statement"]}
assert sids["Discovery"]["Resource"] == "*", sids["Discovery"]
tagged = sids["TokenSecretsTagged"]
assert tagged["Condition"]["StringEquals"]["secretsmanager:ResourceTag/iadvize:managed"] == "true", tagged
assert tagged["Resource"].endswith(f":secret:{function}/*"), tagged["Resource"]
assert given["kms_key_arn"] in json.dumps(sids["SecretsKmsKeys"]), sids["SecretsKmsKeys"]
# Alarms: the fleet-wide series, two periods, e-mail topic + the existing one.
cw = boto3.client("cloudwatch", **kw)
alarms = {a["MetricName"]: a for a in cw.describe_alarms(AlarmNames=[a.split(":alarm:")[1] for a in json.loads(alarm_arns)])["MetricAlarms"]}
expiry = alarms["MinSecondsUntilExpiry"]
assert not expiry.get("Dimensions") and expiry["EvaluationPeriods"] == 2 and expiry["DatapointsToAlarm"] == 2, expiry
assert json.loads(given["alarm_topic_arns"])[0] in expiry["AlarmActions"] and len(expiry["AlarmActions"]) == 2, expiry["AlarmActions"]
# Log group encrypted with its key.
lg = boto3.client("logs", **kw).describe_log_groups(logGroupNamePrefix=f"/aws/lambda/{function}")["logGroups"][0]
assert lg.get("kmsKeyId") == given["log_kms_key_arn"], lg
assert lg.get("retentionInDays") == 90, lg
# Integrations: tagged for discovery, pointing at their own credentials secret.
for name, i in json.loads(integrations).items():
    d = sm.describe_secret(SecretId=i["token_secret_arn"])
    tags = {t["Key"]: t["Value"] for t in d.get("Tags", [])}
    assert tags.get("iadvize:managed") == "true", (name, tags)
    assert tags.get("iadvize:credentials-secret-id") == i["credentials_secret_arn"], (name, tags)
    ctags = {t["Key"]: t["Value"] for t in sm.describe_secret(SecretId=i["credentials_secret_arn"]).get("Tags", [])}
    assert ctags.get("iadvize:credentials") == "true", (name, ctags)
    doc = iam.get_policy_version(PolicyArn=i["consumer_policy_arn"],
                                 VersionId=iam.get_policy(PolicyArn=i["consumer_policy_arn"])["Policy"]["DefaultVersionId"])["PolicyVersion"]["Document"]
    doc = json.loads(doc) if isinstance(doc, str) else doc
    assert i["token_secret_arn"] in json.dumps(doc), (name, doc)
    others = [o["token_secret_arn"] for n, o in json.loads(integrations).items() if n != name]
    assert not any(o in json.dumps(doc) for o in others), (name, "consumer policy reaches another integration")
# The built-in token secret: no managed tag (it is listed), replica, rotation permission scoped.
d = sm.describe_secret(SecretId=token)
assert [r["Region"] for r in d.get("ReplicationStatus", [])] == ["us-west-2"], d.get("ReplicationStatus")
print("code = the S3 release zip; arm64 256 MB 180 s, concurrency 1, VPC; env; role path + boundary + VPC policy;"
      " fleet IAM by tag within the prefix; alarms fleet-wide, 2 of 2, two topics; log group KMS;"
      " integrations tagged with their own consumer policies; replica")
PY
pass "complete: every option landed where it should"
READERS='["111122223333", "arn:aws:iam::444455556666:role/token-reader"]'
between_ticks "$FUNCTION" "$(raw role_arn)" module 180 "$READERS"
pass "complete: report queue, mapping, both credentials rules, follow-ups, dashboard, cross-account readers"

put_credentials "$(raw credentials_secret_arn)" main-user@example.com
for i in shop support; do
  put_credentials "$("$PYTHON" -c 'import json,sys; print(json.loads(sys.argv[1])[sys.argv[2]]["credentials_secret_arn"])' "$INTEGRATIONS" "$i")" "$i-user@example.com"
done
step "complete: refresh tick"
tick "$(out function_environment)" "$TOKEN_SECRET"
token_written "$TOKEN_SECRET"
pass "complete: tick reported refreshed; AWSCURRENT is a token record; state tag written"
plan_is_empty

step "complete: switch to your own role (bring_your_own_role = true)"
echo "-var=bring_your_own_role=true" >>"$WORK/complete.vars"
tf_apply
py "$FUNCTION" "$(raw role_arn)" <<'PY' || fail "complete: own role"
import sys, boto3
endpoint, function, role_arn = sys.argv[1:]
kw = dict(endpoint_url=endpoint, region_name="us-east-1",
          aws_access_key_id="testing", aws_secret_access_key="testing")
conf = boto3.client("lambda", **kw).get_function_configuration(FunctionName=function)
assert conf["Role"] == role_arn and role_arn.endswith("-own-role"), (conf["Role"], role_arn)
iam = boto3.client("iam", **kw)
names = [r["RoleName"] for r in iam.list_roles()["Roles"]]
assert not any(n.endswith("-complete-us-east-1") for n in names), names
doc = iam.get_role_policy(RoleName=role_arn.rsplit("/", 1)[1], PolicyName="broker")["PolicyDocument"]
assert "secretsmanager:PutSecretValue" in str(doc), doc
print(f"function runs as {role_arn}; the module's role is gone; broker_policy_json attached")
PY
pass "complete: bring-your-own role (the module's role removed, its policy attached to yours)"
between_ticks "$FUNCTION" "$(raw role_arn)" own 180 "$READERS"
pass "complete: your own role polls the report queue through the queue policy"
plan_is_empty
destroy_example
