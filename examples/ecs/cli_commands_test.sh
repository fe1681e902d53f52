#!/usr/bin/env bash
# Runs the AWS CLI commands of examples/ecs/README.md, exactly as written there, against moto
# (MOTO_ENDPOINT, from scripts/with-moto.sh), from the repository root: the task role gets the
# consumer policy, and both task definitions register.
set -euo pipefail
cd "$(dirname "$0")/../.."
: "${MOTO_ENDPOINT:?run under scripts/with-moto.sh}"
export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_DEFAULT_REGION=eu-west-1 AWS_REGION=eu-west-1
unset AWS_PROFILE
aws() { command aws --endpoint-url "$MOTO_ENDPOINT" "$@"; }

# Every `aws ...` command line of the README's ```sh blocks (continuations joined).
commands=$(awk '/^ *```sh/{code=1; next} code && /^ *```/{code=0; next} code' examples/ecs/README.md |
  sed -e 's/^ *//' | awk '/\\$/{sub(/\\$/, ""); line = line $0; next} {print line $0; line=""}' | grep '^aws ')
[ "$(printf '%s\n' "$commands" | wc -l)" -ge 2 ] || { echo "examples/ecs/README.md: commands not found" >&2; exit 1; }

# What the commands expect to exist: the task role, the consumer policy.
suffix=$RANDOM$RANDOM
aws iam create-role --role-name my-service-task --assume-role-policy-document \
  '{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"ecs-tasks.amazonaws.com"},"Action":"sts:AssumeRole"}]}' \
  >/dev/null 2>&1 || true
CONSUMER_POLICY_ARN=$(aws iam create-policy --policy-name "consumer-$suffix" --query Policy.Arn --output text \
  --policy-document '{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"secretsmanager:GetSecretValue","Resource":"*"}]}')

while IFS= read -r command; do
  eval "$command" >/dev/null
  echo "ok   ${command:0:100}"
done <<<"$commands"
# The README registers one file; the other must register as well.
aws ecs register-task-definition --cli-input-json file://examples/ecs/task-definition-agent.json >/dev/null
echo "ok   aws ecs register-task-definition --cli-input-json file://examples/ecs/task-definition-agent.json"
attached=$(aws iam list-attached-role-policies --role-name my-service-task --query 'AttachedPolicies[].PolicyArn' --output text)
case " $attached " in *" $CONSUMER_POLICY_ARN "*) echo "ok   the task role has the consumer policy" ;; *) echo "not attached: $attached" >&2; exit 1 ;; esac
