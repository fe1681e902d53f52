#!/usr/bin/env python3
"""Offline checks of the SAM templates that cfn-lint and `sam validate --lint` do not make.

Run with the SAM CLI's python (.venv-infra/sam/bin/python, as `make lint-sam` does), from
the repository root:

1. infra/sam/template-prebuilt.yaml is exactly what infra/sam/derive_prebuilt.py derives from
   infra/sam/template.yaml (fix: `make sam-prebuilt-template`);
2. the prebuilt template goes through the SAM translator (the transform CloudFormation runs)
   and its function's code is the S3 object named by the parameters;
3. the AWS::ServerlessRepo::Application metadata passes the validation `sam publish` runs
   (samcli.vendor.serverlessrepo), its SemanticVersion is the crate's version, and the files it
   names exist.
"""

import os
import re
import subprocess
import sys

from samcli.yamlhelper import yaml_parse
from samtranslator.translator.transform import transform
import samcli.vendor.serverlessrepo.parser as sar_parser

MAIN = "infra/sam/template.yaml"
PREBUILT = "infra/sam/template-prebuilt.yaml"


def fail(msg):
    print(f"FAIL: {msg}", file=sys.stderr)
    sys.exit(1)


def check_prebuilt_is_derived():
    derived = subprocess.run(
        [sys.executable, "infra/sam/derive_prebuilt.py", MAIN],
        check=True, capture_output=True, text=True,
    ).stdout
    with open(PREBUILT, encoding="utf-8") as f:
        if f.read() != derived:
            fail(f"{PREBUILT} is stale: run `make sam-prebuilt-template`")
    print(f"ok: {PREBUILT} is derived from {MAIN}")


class _NoManagedPolicies:
    def load(self):
        return {}


def check_prebuilt_translates():
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    with open(PREBUILT, encoding="utf-8") as f:
        template = yaml_parse(f.read())
    out = transform(template, {}, _NoManagedPolicies())
    fn = out["Resources"]["BrokerFunction"]
    code = fn["Properties"]["Code"]
    if code.get("S3Bucket") != {"Ref": "PackageS3Bucket"} or code.get("S3Key") != {"Ref": "PackageS3Key"}:
        fail(f"prebuilt function code is not the S3 parameters: {code}")
    if fn["Properties"].get("ReservedConcurrentExecutions") != 1:
        fail("prebuilt function lost ReservedConcurrentExecutions: 1")
    print("ok: the prebuilt template translates; the code is s3://PackageS3Bucket/PackageS3Key")


def check_sar_metadata():
    with open(MAIN, encoding="utf-8") as f:
        template = sar_parser.parse_template(f.read())
    meta = sar_parser.get_app_metadata(template)
    # What `sam publish` requires to create an application.
    meta.validate(["name", "description", "author", "semantic_version"])
    with open("Cargo.toml", encoding="utf-8") as f:
        version = re.search(r'^version = "([^"]+)"', f.read(), re.M).group(1)
    if meta.semantic_version != version:
        fail(f"SemanticVersion {meta.semantic_version} != Cargo.toml version {version}")
    for url in (meta.readme_url, meta.license_url):
        if url and not url.startswith("https://"):
            path = os.path.normpath(os.path.join(os.path.dirname(MAIN), url))
            if not os.path.isfile(path):
                fail(f"ServerlessRepo metadata names {url}, but {path} does not exist")
    print(f"ok: ServerlessRepo metadata valid ({meta.name} {meta.semantic_version}, {meta.spdx_license_id})")


if __name__ == "__main__":
    check_prebuilt_is_derived()
    check_prebuilt_translates()
    check_sar_metadata()
