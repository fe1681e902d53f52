#!/usr/bin/env python3
"""Derive infra/sam/template-prebuilt.yaml from infra/sam/template.yaml.

The prebuilt template deploys a release zip (`make dist` output or a published release
asset) that you uploaded to S3, so `sam deploy` needs no Rust toolchain. Everything else is
the main template, line for line: `make lint-infra` fails when the committed file differs
from what this script prints (`make sam-prebuilt-template` rewrites it).

Usage: derive_prebuilt.py [template.yaml] > template-prebuilt.yaml
"""

import sys

HEADER = """\
# GENERATED from infra/sam/template.yaml by infra/sam/derive_prebuilt.py: edit the main
# template, then run `make sam-prebuilt-template`. Deploys a prebuilt release zip from S3:
#   aws s3 cp iadvize-token-broker-<version>-<arch>.zip s3://<bucket>/
# then, in infra/sam/samconfig.toml's parameter_overrides: Architecture="<arch>"
# PackageS3Bucket="<bucket>" PackageS3Key="iadvize-token-broker-<version>-<arch>.zip", and:
#   cd "$(git rev-parse --show-toplevel)"
#   sam deploy --config-file "$PWD/infra/sam/samconfig.toml" -t infra/sam/template-prebuilt.yaml
"""

PARAMETERS = """\
  PackageS3Bucket:
    Type: String
    AllowedPattern: ^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$
    Description: >-
      S3 bucket (in the stack's region) holding the release zip
      iadvize-token-broker-<version>-<arch>.zip.
  PackageS3Key:
    Type: String
    AllowedPattern: ^.+\\.zip$
    Description: Key of the release zip; its architecture must match Architecture.
  PackageS3ObjectVersion:
    Type: String
    Default: ""
    Description: Version of the S3 object (versioned buckets). Empty = the key alone.
"""

CONDITIONS = """\
  HasPackageS3ObjectVersion: !Not [!Equals [!Ref PackageS3ObjectVersion, ""]]
"""

CODE = """\
      CodeUri:
        Bucket: !Ref PackageS3Bucket
        Key: !Ref PackageS3Key
        Version: !If [HasPackageS3ObjectVersion, !Ref PackageS3ObjectVersion, !Ref AWS::NoValue]
"""

# Lines of the main template that only make sense when building from source.
BUILD_ONLY = (
    "      # sam build runs `cargo lambda build --release` in the repository root for the\n",
    "      # Architecture parameter and packages the binary as `bootstrap`.\n",
    "      BuildMethod: rust-cargolambda\n",
    "      BuildProperties:\n",
    "        Binary: iadvize-token-broker\n",
)


def derive(lines):
    out = [HEADER]
    skipping_sar = False
    seen = {"code": False, "params": False, "conds": False, "sar": False}
    for line in lines:
        # The Serverless Application Repository publishes the source build
        # (sam build, sam package, sam publish), not this template.
        if line == "  AWS::ServerlessRepo::Application:\n":
            skipping_sar, seen["sar"] = True, True
            continue
        if skipping_sar:
            if line.startswith("    "):
                continue
            skipping_sar = False
        if line in BUILD_ONLY:
            continue
        if line.startswith("  # Build from source:") or line.startswith("  # A prebuilt release zip:"):
            continue
        if line == "      CodeUri: ../..\n":
            out.append(CODE)
            seen["code"] = True
            continue
        out.append(line)
        if line == "Parameters:\n":
            out.append(PARAMETERS)
            seen["params"] = True
        elif line == "Conditions:\n":
            out.append(CONDITIONS)
            seen["conds"] = True
    missing = [k for k, v in seen.items() if not v]
    if missing:
        sys.exit(f"derive_prebuilt.py: anchors not found in the main template: {missing}")
    return "".join(out)


def main():
    path = sys.argv[1] if len(sys.argv) > 1 else "infra/sam/template.yaml"
    with open(path, encoding="utf-8") as f:
        sys.stdout.write(derive(f.readlines()))


if __name__ == "__main__":
    main()
