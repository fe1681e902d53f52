"""Checks the ECS recipe's task definitions offline.

1. Each file is the input of ECS RegisterTaskDefinition (`aws ecs register-task-definition
   --cli-input-json file://FILE`): botocore's parameter validator checks it against the ECS
   service model that botocore ships (the one the AWS CLI uses): unknown keys, missing required
   members, types, minimum lengths and ranges. No AWS call is made.
2. The recipe's rules: no container gets the token through `secrets`/`valueFrom` (injected once
   at task start, so a task older than the token's remaining life sends expired tokens); each
   application container knows the token secret and the report queue; an agent sidecar gets an
   SSRF token and a health check the application waits for.
3. Broken copies must be refused, so that both checks are known to bite.

    .venv/bin/python examples/ecs/check_task_definitions.py
"""

import copy
import json
import pathlib
import sys

import botocore.session
from botocore.validate import ParamValidator

HERE = pathlib.Path(__file__).resolve().parent
TOKEN_SECRET = "iadvize/token"

model = botocore.session.get_session().get_service_model("ecs")
shape = model.operation_model("RegisterTaskDefinition").input_shape


def schema_errors(task):
    report = ParamValidator().validate(task, shape)
    return [report.generate_report()] if report.has_errors() else []


def rule_errors(task):
    errors = []
    containers = task.get("containerDefinitions", [])
    names = {c.get("name") for c in containers}
    for c in containers:
        for secret in c.get("secrets", []):
            if TOKEN_SECRET in secret.get("valueFrom", "") or "IADVIZE" in secret.get("name", "").upper():
                errors.append(
                    f"{c.get('name')}: the token through secrets/valueFrom ({secret.get('name')}) is injected once at task start"
                )
        env = {e.get("name"): e.get("value") for e in c.get("environment", [])}
        if c.get("name") == "secrets-manager-agent":
            if not env.get("AWS_TOKEN"):
                errors.append("secrets-manager-agent: no AWS_TOKEN (the SSRF token); ECS sets no AWS_SESSION_TOKEN")
            if "healthCheck" not in c:
                errors.append("secrets-manager-agent: no healthCheck for the application to wait on")
            continue
        if env.get("IADVIZE_TOKEN_SECRET_ID") != TOKEN_SECRET:
            errors.append(f"{c.get('name')}: IADVIZE_TOKEN_SECRET_ID is not {TOKEN_SECRET}")
        if not str(env.get("IADVIZE_REPORT_QUEUE_URL", "")).endswith(".fifo"):
            errors.append(f"{c.get('name')}: IADVIZE_REPORT_QUEUE_URL is not the report queue (a .fifo URL)")
        if "secrets-manager-agent" in names and {"containerName": "secrets-manager-agent", "condition": "HEALTHY"} not in c.get(
            "dependsOn", []
        ):
            errors.append(f"{c.get('name')}: does not wait for the agent to be HEALTHY")
    if not task.get("taskRoleArn"):
        errors.append("no taskRoleArn: the readers need the consumer policy through the task role")
    return errors


def check(task):
    return schema_errors(task) + rule_errors(task)


def main():
    failed = False
    files = sorted(HERE.glob("task-definition-*.json"))
    for path in files:
        task = json.loads(path.read_text())
        errors = check(task)
        names = ", ".join(c["name"] for c in task["containerDefinitions"])
        print(f"{'FAIL' if errors else 'ok'}   {path.name}: RegisterTaskDefinition input, containers {names}")
        for error in errors:
            print("       " + error.replace("\n", "\n       "))
        failed |= bool(errors)

    base = json.loads((HERE / "task-definition-agent.json").read_text())

    def app(task):
        return next(c for c in task["containerDefinitions"] if c["name"] == "app")

    def agent(task):
        return next(c for c in task["containerDefinitions"] if c["name"] == "secrets-manager-agent")

    broken = {
        "the token through secrets/valueFrom": lambda t: app(t).setdefault("secrets", []).append(
            {"name": "IADVIZE_TOKEN", "valueFrom": "arn:aws:secretsmanager:eu-west-1:123456789012:secret:iadvize/token-AbCdEf"}
        ),
        "an unknown key (containerDefinitions[].environmentVariables)": lambda t: app(t).update(environmentVariables=[]),
        "a wrong type (memory: 1024 as a number)": lambda t: t.update(memory=1024),
        "a missing required member (family)": lambda t: t.pop("family"),
        "a health check interval as a string": lambda t: agent(t)["healthCheck"].update(interval="10"),
        "an agent without an SSRF token": lambda t: agent(t).pop("environment"),
        "an application that does not wait for the agent": lambda t: app(t).pop("dependsOn"),
    }
    for what, break_it in broken.items():
        task = copy.deepcopy(base)
        break_it(task)
        errors = check(task)
        first = errors[0].replace("\n", " ")[:110] if errors else ""
        print(f"{'ok' if errors else 'FAIL'}   refused: {what}" + (f" ({first})" if errors else ": accepted!"))
        failed |= not errors
    print("examples/ecs: check failed" if failed else f"examples/ecs: {len(files)} task definitions valid, {len(broken)} broken copies refused")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
