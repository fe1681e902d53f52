#!/usr/bin/env bash
# Runs the commands of examples/ci/README.md, exactly as written there, against moto
# (MOTO_ENDPOINT, from scripts/with-moto.sh), from the repository root: the GitHub OIDC role is
# created with the consumer policy; the token is read; the report lands on a FIFO queue with
# the token's SHA-256 and the secret's ARN as message group.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cd "$here/../.."
: "${MOTO_ENDPOINT:?run under scripts/with-moto.sh}"
export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_DEFAULT_REGION=eu-west-1 AWS_REGION=eu-west-1
unset AWS_PROFILE
# AWS CLI v1 does not route every service through AWS_ENDPOINT_URL (SQS went to AWS): pass it.
aws() { command aws --endpoint-url "$MOTO_ENDPOINT" "$@"; }

# The ```sh block of the "GitHub Actions" section: the OIDC provider, the role, its policy.
iam_block=$(awk '/^## GitHub Actions/{on=1; next} /^## /{on=0} on && /^```sh/{code=1; next} code && /^```/{code=0; next} code' "$here/README.md")
[ -n "$iam_block" ] || { echo "README.md: the commands of 'GitHub Actions' not found" >&2; exit 1; }
CONSUMER_POLICY_ARN=$(aws iam create-policy --policy-name "consumer-$RANDOM$RANDOM" --query Policy.Arn --output text \
  --policy-document '{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"secretsmanager:GetSecretValue","Resource":"*"}]}')
aws iam delete-role --role-name github-iadvize-token-reader >/dev/null 2>&1 || true
eval "$iam_block" >/dev/null
trust=$(aws iam get-role --role-name github-iadvize-token-reader --query 'Role.AssumeRolePolicyDocument.Statement[0].Action' --output text)
attached=$(aws iam list-attached-role-policies --role-name github-iadvize-token-reader --query 'AttachedPolicies[].PolicyArn' --output text)
[ "$trust" = sts:AssumeRoleWithWebIdentity ] && [ "$attached" = "$CONSUMER_POLICY_ARN" ] ||
  { echo "the OIDC role: trust $trust, policies $attached" >&2; exit 1; }
echo "ok   GitHub OIDC provider, role github-iadvize-token-reader (web identity trust) with the consumer policy"

# The ```sh blocks of the "Other CI" section.
blocks=$(awk '/^## Other CI/{on=1; next} /^## /{on=0} on && /^```sh/{code=1; next} code && /^```/{code=0; print "#--"; next} code' "$here/README.md")
read_block=$(printf '%s\n' "$blocks" | awk 'BEGIN{n=0} /^#--/{n++; next} n==0')
report_block=$(printf '%s\n' "$blocks" | awk 'BEGIN{n=0} /^#--/{n++; next} n==1')
[ -n "$read_block" ] && [ -n "$report_block" ] || { echo "README.md: the two commands of 'Other CI' not found" >&2; exit 1; }

id=iadvize/token
suffix=$RANDOM$RANDOM
token="ci-token-$suffix"
record=$(jq -nc --arg t "$token" '{access_token: $t, token_type: "Bearer", issued_at: "2026-11-30T08:00:00Z", expires_at: "2099-01-01T00:00:00Z", expires_in: 86400}')
aws secretsmanager create-secret --name "$id" --secret-string "$record" >/dev/null 2>&1 ||
  aws secretsmanager put-secret-value --secret-id "$id" --secret-string "$record" >/dev/null
QUEUE_URL=$(aws sqs create-queue --queue-name "reports-$suffix.fifo" \
  --attributes FifoQueue=true,ContentBasedDeduplication=true --query QueueUrl --output text)

eval "$read_block"
[ "$IADVIZE_ACCESS_TOKEN" = "$token" ] || { echo "the one-liner did not read the token" >&2; exit 1; }
echo "ok   one-liner: AWSCURRENT's access_token read"

sent=$(eval "$report_block")
case $sent in *"$token"*) echo "the report echoed the token" >&2; exit 1 ;; esac
got=$(aws sqs receive-message --queue-url "$QUEUE_URL" --attribute-names MessageGroupId \
  --query 'Messages[0].[Body,Attributes.MessageGroupId]' --output text)
arn=$(aws secretsmanager describe-secret --secret-id "$id" --query ARN --output text)
case $arn in arn:aws:secretsmanager:*:secret:"$id"-*) ;; *) echo "the secret's ARN: $arn" >&2; exit 1 ;; esac
want=$(jq -nc --arg id "$arn" --arg sha "$(printf %s "$token" | sha256sum | cut -d' ' -f1)" \
  '{action: "report-rejected", secret_id: $id, token_sha256: $sha}')
[ "$got" = "$want"$'\t'"$arn" ] || { echo "report: got $got, want $want (group $arn)" >&2; exit 1; }
echo "ok   report: body $want, message group $arn"
