"""Checks the GitHub Actions recipe (github-actions.yml) offline.

1. JSON Schema: check-jsonschema with the GitHub workflow schema it ships
   (`--builtin-schema vendor.github-workflows`, from SchemaStore; no download): unknown keys,
   types, the shape of `on`, `permissions`, jobs and steps.
2. The recipe's rules: OIDC (`id-token: write`), the token read once by
   aws-actions/aws-secretsmanager-get-secrets with parse-json-secrets, and no step that puts
   the token on a command line, echoes it or traces the shell.
3. Broken copies must be refused, so that both checks are known to bite.

    .venv/bin/python examples/ci/check_workflow.py
"""

import copy
import pathlib
import re
import shutil
import subprocess
import sys
import tempfile

import yaml

HERE = pathlib.Path(__file__).resolve().parent
WORKFLOW = HERE / "github-actions.yml"
TOKEN = "IADVIZE_ACCESS_TOKEN"


def check_jsonschema():
    here = pathlib.Path(sys.executable).parent / "check-jsonschema"
    found = str(here) if here.exists() else shutil.which("check-jsonschema")
    if not found:
        sys.exit("check-jsonschema is missing: run `make tools` (requirements-dev.txt)")
    return found


def schema_errors(text):
    with tempfile.NamedTemporaryFile("w", suffix=".yml") as file:
        file.write(text)
        file.flush()
        done = subprocess.run(
            [check_jsonschema(), "--builtin-schema", "vendor.github-workflows", file.name],
            capture_output=True,
            text=True,
        )
    if done.returncode == 0:
        return []
    lines = [line.strip() for line in (done.stdout + done.stderr).splitlines() if line.strip()]
    return [" ".join(lines[1:3]) or "check-jsonschema failed"]


def rule_errors(workflow):
    errors = []
    if (workflow.get("permissions") or {}).get("id-token") != "write":
        errors.append("permissions: id-token: write is needed for the OIDC role")
    for name, job in (workflow.get("jobs") or {}).items():
        steps = job.get("steps") or []
        reads = [s for s in steps if str(s.get("uses", "")).startswith("aws-actions/aws-secretsmanager-get-secrets@")]
        if len(reads) != 1:
            errors.append(f"{name}: read the token once per job with aws-actions/aws-secretsmanager-get-secrets ({len(reads)} reads)")
        elif str((reads[0].get("with") or {}).get("parse-json-secrets")).lower() != "true":
            errors.append(f"{name}: parse-json-secrets: true, so that {TOKEN} holds the token, not the record")
        for step in steps:
            run = step.get("run") or ""
            if re.search(r"^\s*set\s+-[a-z]*x", run, re.M) or "bash -x" in run:
                errors.append(f"{name}: a step traces its shell (set -x), which prints the token")
            for line in run.splitlines():
                if TOKEN not in line:
                    continue
                if re.search(r"\b(echo|cat)\b", line) or not re.match(r"\s*printf '[^']*' \"\$" + TOKEN + r"\" \|\s*$", line):
                    errors.append(f"{name}: {TOKEN} used outside `printf '...' \"${TOKEN}\" |` into curl --config - : {line.strip()}")
    return errors


def check(workflow):
    text = yaml.safe_dump(workflow, sort_keys=False)
    return schema_errors(text) + rule_errors(workflow)


def main():
    text = WORKFLOW.read_text()
    workflow = yaml.safe_load(text)
    # PyYAML reads the key `on` as True (YAML 1.1); write it back as GitHub reads it.
    workflow = {("on" if key is True else key): value for key, value in workflow.items()}
    errors = schema_errors(text) + rule_errors(workflow)
    print(f"{'FAIL' if errors else 'ok'}   {WORKFLOW.name}: GitHub workflow schema (check-jsonschema vendor.github-workflows) and rules")
    for error in errors:
        print(f"       {error}")
    failed = bool(errors)

    def steps(w):
        return w["jobs"]["report"]["steps"]

    broken = {
        "an unknown key in a step (with-env)": lambda w: steps(w)[1].update({"with-env": {}}),
        "a wrong type (timeout-minutes: thirty)": lambda w: w["jobs"]["report"].update({"timeout-minutes": "thirty"}),
        "a job without runs-on": lambda w: w["jobs"]["report"].pop("runs-on"),
        "no id-token permission": lambda w: w["permissions"].pop("id-token"),
        "the token echoed": lambda w: steps(w).append({"run": f'echo "${TOKEN}"'}),
        "the token on a command line": lambda w: steps(w).append(
            {"run": f'curl -H "Authorization: Bearer ${TOKEN}" https://api.iadvize.com/graphql'}
        ),
        "a traced shell": lambda w: steps(w)[2].update(run="set -x\n" + steps(w)[2]["run"]),
        "the token read twice": lambda w: steps(w).append(copy.deepcopy(steps(w)[1])),
        "the whole record instead of its fields": lambda w: steps(w)[1]["with"].pop("parse-json-secrets"),
    }
    for what, break_it in broken.items():
        copy_ = copy.deepcopy(workflow)
        break_it(copy_)
        errors = check(copy_)
        first = errors[0][:110] if errors else ""
        print(f"{'ok' if errors else 'FAIL'}   refused: {what}" + (f" ({first})" if errors else ": accepted!"))
        failed |= not errors
    print("examples/ci: check failed" if failed else f"examples/ci: 1 workflow valid, {len(broken)} broken copies refused")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
