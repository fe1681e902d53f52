#!/usr/bin/env python3
"""Offline checks of the SAM templates and of the SAM commands in the docs, beyond what
cfn-lint and `sam validate --lint` check.

Run with the SAM CLI's python (.venv-infra/sam/bin/python, as `make lint-sam` does), from
the repository root:

1. infra/sam/template-prebuilt.yaml is exactly what infra/sam/derive_prebuilt.py derives from
   infra/sam/template.yaml (fix: `make sam-prebuilt-template`);
2. the prebuilt template goes through the SAM translator (the transform CloudFormation runs)
   and its function's code is the S3 object named by the parameters;
3. a quota-10 account: both templates, translated and resolved with their default parameters,
   reserve no concurrency anywhere (no ReservedConcurrentExecutions, no provisioned
   concurrency, on any resource, including ones SAM generates), and setting the option does;
4. the AWS::ServerlessRepo::Application metadata passes the validation `sam publish` runs
   (samcli.vendor.serverlessrepo, which only checks that fields are present) and the patterns
   SAR documents for Name, Author, Labels and SemanticVersion; its version is the crate's,
   its license is one of the crate's and its files exist;
5. every SAM command in the docs (fenced shell blocks of the READMEs, command lines in the
   comments of samconfig.toml and the prebuilt template) runs from the repository root, names
   infra/sam/samconfig.toml and a template explicitly, never overrides parameters on its own,
   and uses only flags its `sam <command> --help` lists; each is then run offline (a dead AWS
   endpoint, stopped once the SAM CLI has read its configuration) to show it reads that file
   and the same Architecture;
6. the report queue, its event source mapping, the follow-up and credentials-event
   permissions, the consumer policy and the cross-account options (resource policy, key
   policy, queue policy, and the Rules that refuse readers without a customer-managed key),
   translated and resolved for several parameter sets;
7. with --build: the docs' `sam build` command itself, then the built bootstrap's architecture
   (ELF machine) is the configuration's (minutes: it is a release build).
"""

import ast
import os
import re
import shlex
import subprocess
import sys
import tempfile
import tomllib

from samcli.yamlhelper import yaml_parse
from samtranslator.translator.transform import transform
import samcli.vendor.serverlessrepo.parser as sar_parser

MAIN = "infra/sam/template.yaml"
PREBUILT = "infra/sam/template-prebuilt.yaml"
SAMCONFIG = "infra/sam/samconfig.toml"
DOCS = ["README.md", "infra/README.md", "infra/terraform/README.md"]
# Files whose comments show SAM command lines.
COMMENTED = [SAMCONFIG, PREBUILT, MAIN, "infra/sam/derive_prebuilt.py"]
SAM = os.path.join(os.path.dirname(sys.executable), "sam")
ROOT_CD = 'cd "$(git rev-parse --show-toplevel)"'
CONFIG_ARG = "$PWD/infra/sam/samconfig.toml"
# The template each command may be given, by subcommand.
TEMPLATES = {
    "build": {MAIN},
    "validate": {MAIN, PREBUILT},
    "deploy": {".aws-sam/build/template.yaml", PREBUILT},
    "package": {".aws-sam/build/template.yaml"},
    "publish": {".aws-sam/packaged.yaml"},
}

# SAR's documented patterns (AWS SAM developer guide, "AWS SAM template Metadata section
# properties") and semver.org's regular expression for SemanticVersion.
SAR_NAME = re.compile(r"^[a-zA-Z0-9\-]+$")
SAR_AUTHOR = re.compile(r"^[a-z0-9](([a-z0-9]|-(?!-))*[a-z0-9])?$")
SAR_LABEL = re.compile(r"^[a-zA-Z0-9+\-_:\/@]+$")
SEMVER = re.compile(
    r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?"
    r"(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$"
)
# What a license file starts with, per SPDX identifier the crate may use.
LICENSE_TEXT = {"MIT": "MIT License", "Apache-2.0": "Apache License"}

failures = []


def fail(msg):
    failures.append(msg)
    print(f"FAIL: {msg}", file=sys.stderr)


def ok(msg):
    print(f"ok: {msg}")


def read(path):
    with open(path, encoding="utf-8") as f:
        return f.read()


# ------------------------------------------------------------------------------------------
# 1-2. The prebuilt template
# ------------------------------------------------------------------------------------------


def check_prebuilt_is_derived():
    derived = subprocess.run(
        [sys.executable, "infra/sam/derive_prebuilt.py", MAIN],
        check=True, capture_output=True, text=True,
    ).stdout
    if read(PREBUILT) != derived:
        fail(f"{PREBUILT} is stale: run `make sam-prebuilt-template`")
        return
    ok(f"{PREBUILT} is derived from {MAIN}")


class _NoManagedPolicies:
    def load(self):
        return {}


def translated(path):
    """The template as CloudFormation sees it after the SAM transform; a local CodeUri (the
    source template) stands for the S3 object `sam package` would upload."""
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    template = yaml_parse(read(path))
    for res in template["Resources"].values():
        props = res.get("Properties", {})
        if res["Type"] == "AWS::Serverless::Function" and isinstance(props.get("CodeUri"), str) \
                and not props["CodeUri"].startswith("s3://"):
            props["CodeUri"] = "s3://packaged/code.zip"
    return transform(template, {}, _NoManagedPolicies())


def check_prebuilt_translates():
    fn = translated(PREBUILT)["Resources"]["BrokerFunction"]
    code = fn["Properties"]["Code"]
    if code.get("S3Bucket") != {"Ref": "PackageS3Bucket"} or code.get("S3Key") != {"Ref": "PackageS3Key"}:
        fail(f"prebuilt function code is not the S3 parameters: {code}")
        return
    ok("the prebuilt template translates; the code is s3://PackageS3Bucket/PackageS3Key")


# ------------------------------------------------------------------------------------------
# 3. A quota-10 account: nothing reserved with the default parameters
# ------------------------------------------------------------------------------------------

# Properties that take concurrency away from the account's unreserved pool. An account whose
# concurrency quota is 10 rejects any of them ("decreases account's
# UnreservedConcurrentExecution below its minimum value of [10]").
RESERVING = ("ReservedConcurrentExecutions", "ProvisionedConcurrencyConfig", "ProvisionedConcurrentExecutions")
PSEUDO = {"AWS::Region": "us-east-1", "AWS::AccountId": "123456789012", "AWS::Partition": "aws",
          "AWS::StackName": "stack", "AWS::URLSuffix": "amazonaws.com"}
NO_VALUE = object()


class Resolver:
    """Evaluates a translated template's conditions and Fn::If for given parameter values
    (the defaults, plus `overrides`), the way CloudFormation would at deploy time."""

    def __init__(self, template, overrides):
        self.template = template
        self.params = {}
        for name, p in template.get("Parameters", {}).items():
            value = overrides.get(name, p.get("Default", f"<{name}>"))
            if p.get("Type") == "CommaDelimitedList":
                value = str(value).split(",")
            self.params[name] = value
        self.conditions = {}

    def ref(self, name):
        if name in self.params:
            return self.params[name]
        return PSEUDO.get(name, {"Ref": name})

    def condition(self, name):
        if name not in self.conditions:
            self.conditions[name] = bool(self.value(self.template["Conditions"][name]))
        return self.conditions[name]

    def value(self, node):
        """The value of a condition expression or a property, Fn::If resolved."""
        if isinstance(node, list):
            out = [self.value(n) for n in node]
            return [v for v in out if v is not NO_VALUE]
        if not isinstance(node, dict):
            return node
        if len(node) == 1:
            (key, arg), = node.items()
            if key == "Ref":
                return NO_VALUE if arg == "AWS::NoValue" else self.ref(arg)
            if key == "Condition":
                return self.condition(arg)
            if key == "Fn::If":
                return self.value(arg[1] if self.condition(arg[0]) else arg[2])
            if key == "Fn::Equals":
                a, b = (self.value(x) for x in arg)
                return str(a) == str(b)
            if key == "Fn::Not":
                return not self.value(arg[0])
            if key == "Fn::And":
                return all(self.value(x) for x in arg)
            if key == "Fn::Or":
                return any(self.value(x) for x in arg)
            if key == "Fn::Join":
                parts = self.value(arg[1])
                if isinstance(parts, list) and all(isinstance(p, str) for p in parts):
                    return arg[0].join(parts)
        out = {k: self.value(v) for k, v in node.items()}
        return {k: v for k, v in out.items() if v is not NO_VALUE}


def reservations(path, overrides):
    """Every concurrency reservation the template makes with these parameters, as
    `Resource.Property = value`."""
    template = translated(path)
    r = Resolver(template, overrides)
    found = []

    def walk(where, node):
        if isinstance(node, dict):
            for k, v in node.items():
                if k in RESERVING:
                    found.append(f"{where}.{k} = {v}")
                walk(f"{where}.{k}", v)
        elif isinstance(node, list):
            for i, v in enumerate(node):
                walk(f"{where}[{i}]", v)

    for name, res in template["Resources"].items():
        if "Condition" in res and not r.condition(res["Condition"]):
            continue
        walk(f"{name} ({res['Type']})", r.value(res.get("Properties", {})))
    return found


def check_quota_10_account():
    # The prebuilt template's package parameters have no default: any value does here.
    package = {"PackageS3Bucket": "bucket", "PackageS3Key": "key.zip"}
    for path in (MAIN, PREBUILT):
        found = reservations(path, package)
        if found:
            fail(f"{path}: the default deploy reserves concurrency, which an account with a "
                 f"concurrency quota of 10 rejects: {found}")
            continue
        # The check can fail, and the option does what it says.
        on = reservations(path, dict(package, ReservedConcurrentExecutions="1"))
        if on != ["BrokerFunction (AWS::Lambda::Function).ReservedConcurrentExecutions = 1"]:
            fail(f"{path}: ReservedConcurrentExecutions=1 should reserve 1 on the function, found {on}")
            continue
        ok(f"{path}: the default deploy reserves no concurrency (quota-10 account); "
           "ReservedConcurrentExecutions=1 reserves 1")


# ------------------------------------------------------------------------------------------
# 4. Serverless Application Repository metadata
# ------------------------------------------------------------------------------------------


def sar_problems(meta):
    """What SAR would refuse (its documented patterns), beyond what `sam publish` checks."""
    problems = []
    if not (SAR_NAME.match(meta.get("Name", "")) and len(meta["Name"]) <= 140):
        problems.append(f"Name {meta.get('Name')!r} does not match [a-zA-Z0-9-]+ (1-140)")
    if not (SAR_AUTHOR.match(meta.get("Author", "")) and len(meta["Author"]) <= 127):
        problems.append(f"Author {meta.get('Author')!r}: lowercase letters, digits and single hyphens (1-127)")
    if not 1 <= len(meta.get("Description", "")) <= 256:
        problems.append("Description must be 1-256 characters")
    labels = meta.get("Labels", [])
    if len(labels) > 10:
        problems.append(f"{len(labels)} Labels, at most 10")
    for label in labels:
        if not (SAR_LABEL.match(str(label)) and len(str(label)) <= 127):
            problems.append(f"Label {label!r} does not match [a-zA-Z0-9+-_:/@]+ (1-127)")
    if not SEMVER.match(str(meta.get("SemanticVersion", ""))):
        problems.append(f"SemanticVersion {meta.get('SemanticVersion')!r} is not a semantic version")
    for key in ("HomePageUrl", "SourceCodeUrl"):
        if not str(meta.get(key, "")).startswith("https://"):
            problems.append(f"{key} {meta.get(key)!r} is not an https URL")
    return problems


def check_sar_patterns_catch_bad_values():
    good = {"Name": "a-b", "Author": "a-b1", "Description": "d", "Labels": ["x:y/z@1"],
            "SemanticVersion": "1.2.3-rc.1+b5", "HomePageUrl": "https://h", "SourceCodeUrl": "https://s"}
    assert not sar_problems(good), sar_problems(good)
    for key, bad in [("Author", "iadvize-token-broker maintainers"), ("Author", "a--b"), ("Author", "A"),
                     ("Author", "-a"), ("Name", "a b"), ("Labels", ["a b"]), ("Labels", ["x"] * 11),
                     ("SemanticVersion", "0.1"), ("SemanticVersion", "01.2.3"), ("SemanticVersion", "v1.2.3"),
                     ("HomePageUrl", "github.com/x")]:
        if not sar_problems(dict(good, **{key: bad})):
            fail(f"the SAR checks accept {key}={bad!r}")
            return
    ok("the SAR pattern checks refuse the values SAR refuses (Author with a space or '--', ...)")


def cargo_package(path):
    with open(path, "rb") as f:
        return tomllib.load(f)["package"]


def check_sar_metadata():
    template_text = read(MAIN)
    template = sar_parser.parse_template(template_text)
    meta = sar_parser.get_app_metadata(template)
    # What `sam publish` requires to create an application.
    meta.validate(["name", "description", "author", "semantic_version"])
    raw = yaml_parse(template_text)["Metadata"]["AWS::ServerlessRepo::Application"]
    for p in sar_problems(raw):
        fail(f"{MAIN} ServerlessRepo metadata: {p}")
    crate = cargo_package("Cargo.toml")
    if meta.semantic_version != crate["version"]:
        fail(f"SemanticVersion {meta.semantic_version} != Cargo.toml version {crate['version']}")
    # One license of the crate's; the crates all say the same; each license has its file.
    licenses = set(re.split(r"\s+OR\s+", crate["license"]))
    for manifest in ("consumer/Cargo.toml", "standins/Cargo.toml"):
        if cargo_package(manifest).get("license") != crate["license"]:
            fail(f"{manifest} license differs from Cargo.toml's {crate['license']}")
    if meta.spdx_license_id not in licenses:
        fail(f"SpdxLicenseId {meta.spdx_license_id} is not one of the crate's licenses {sorted(licenses)}")
    for spdx in licenses:
        path = "LICENSE-APACHE" if spdx == "Apache-2.0" else f"LICENSE-{spdx}"
        if not os.path.isfile(path) or LICENSE_TEXT.get(spdx, "\0") not in read(path)[:200]:
            fail(f"the crate is licensed {crate['license']}, but {path} is missing or not the {spdx} text")
    for url in (meta.readme_url, meta.license_url):
        if url and not url.startswith("https://"):
            path = os.path.normpath(os.path.join(os.path.dirname(MAIN), url))
            if not os.path.isfile(path):
                fail(f"ServerlessRepo metadata names {url}, but {path} does not exist")
    license_path = os.path.normpath(os.path.join(os.path.dirname(MAIN), meta.license_url or ""))
    if not meta.license_url or LICENSE_TEXT.get(meta.spdx_license_id, "\0") not in read(license_path)[:200]:
        fail(f"LicenseUrl {meta.license_url} is not the text of SpdxLicenseId {meta.spdx_license_id}")
    if not failures:
        ok(f"ServerlessRepo metadata valid ({meta.name} {meta.semantic_version}, author {meta.author}, "
           f"{meta.spdx_license_id} of {crate['license']}, {meta.license_url})")


# ------------------------------------------------------------------------------------------
# 5-6. The SAM commands of the docs
# ------------------------------------------------------------------------------------------


def logical_lines(lines):
    """Joins backslash-continued lines; yields (first line number, text)."""
    buf, start = "", None
    for no, line in lines:
        if start is None:
            start = no
        if line.rstrip().endswith("\\"):
            buf += line.rstrip()[:-1] + " "
            continue
        yield start, buf + line
        buf, start = "", None
    if buf:
        yield start, buf


def doc_blocks():
    """(where, [(line number, text)]) of every fenced shell block of the docs, and of the
    command lines in the comments of the SAM files."""
    for path in DOCS:
        block, fence = None, None
        for no, line in enumerate(read(path).splitlines(), 1):
            stripped = line.strip()
            if block is None:
                m = re.match(r"^(`{3,})(sh|bash|shell|console)?\s*$", stripped)
                if m:
                    block, fence = [], m.group(1)
                continue
            if stripped == fence:
                yield path, block
                block = None
                continue
            block.append((no, stripped))
    for path in COMMENTED:
        block = []
        for no, line in enumerate(read(path).splitlines(), 1):
            # Command lines are indented in their comment ("#   sam build ..."), prose is not.
            m = re.match(r"^\s*#\s{2,4}(\S.*)$", line)
            if m and (m.group(1).startswith(("sam ", "cd ", "aws "))):
                block.append((no, m.group(1)))
        yield path, block


def sam_commands():
    """(where, argv, block has the cd to the root before it) of every SAM command in the docs."""
    for path, block in doc_blocks():
        at_root = False
        for no, text in logical_lines(block):
            text = text.split(" #")[0].strip() if not text.startswith("#") else ""
            # One command per `&&`, `;` or `|` of a line.
            for part in re.split(r"\s(?:&&|;|\|)\s", text):
                part = part.strip()
                if part == ROOT_CD:
                    at_root = True
                if not part.startswith("sam "):
                    continue
                try:
                    argv = shlex.split(part)
                except ValueError as e:
                    fail(f"{path}:{no}: cannot read the command `{part}` as a shell would: {e}")
                    continue
                yield f"{path}:{no}", argv, at_root


_help = {}


def help_flags(sub):
    if sub not in _help:
        out = subprocess.run([SAM, sub, "--help"], capture_output=True, text=True,
                             env=dict(os.environ, SAM_CLI_TELEMETRY="0")).stdout
        flags = set()
        for line in out.splitlines():
            if re.match(r"^\s+-", line):
                spec = re.split(r"\s{2,}", line.strip())[0]  # "-c, --cached / --no-cached"
                flags.update(re.findall(r"(?:^|[\s,/])(--?[a-z][a-z0-9-]*)", spec))
        _help[sub] = flags
    return _help[sub]


def option(argv, *names):
    for i, a in enumerate(argv):
        for n in names:
            if a == n and i + 1 < len(argv):
                return argv[i + 1]
            if a.startswith(n + "="):
                return a.split("=", 1)[1]
    return None


def offline_env():
    env = dict(os.environ, SAM_CLI_TELEMETRY="0", AWS_ACCESS_KEY_ID="offline", AWS_SECRET_ACCESS_KEY="offline",
               AWS_DEFAULT_REGION="us-east-1", AWS_REGION="us-east-1", AWS_ENDPOINT_URL="http://127.0.0.1:9",
               AWS_MAX_ATTEMPTS="1", AWS_EC2_METADATA_DISABLED="true")
    for k in ("AWS_PROFILE", "AWS_SESSION_TOKEN"):
        env.pop(k, None)
    # No cargo on PATH: a `sam build` stops before building.
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep)
                                  if not os.path.exists(os.path.join(p, "cargo")))
    return env


_seen = {}


def config_seen(argv):
    """Runs a doc command offline with --debug until the SAM CLI has read its configuration;
    returns (config file it read, parameters it resolved, output tail). The same command
    line is run once."""
    key = tuple(argv)
    if key not in _seen:
        _seen[key] = _config_seen(argv)
    return _seen[key]


def _config_seen(argv):
    cmd = [SAM] + [a.replace("$PWD", os.getcwd()) for a in argv[1:]] + ["--debug"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=offline_env())
    config, params, tail = None, None, []
    try:
        for line in proc.stdout:
            tail = (tail + [line.rstrip()])[-5:]
            m = re.search(r"Config file location: (\S+)", line)
            if m:
                config = m.group(1)
            m = re.search(r"Converted \d+ parameters: (\{.*\})", line)
            if m:
                params = ast.literal_eval(m.group(1))
            if re.search(r"Using config file: ", line):
                break
    finally:
        proc.kill()
        proc.wait()
    return config, params, tail


def samconfig_architecture():
    with open(SAMCONFIG, "rb") as f:
        conf = tomllib.load(f)
    sections = conf.get("default", {})
    overrides = sections.get("global", {}).get("parameters", {}).get("parameter_overrides", "")
    m = re.search(r'Architecture="?(x86_64|arm64)"?', overrides)
    if not m:
        fail(f"{SAMCONFIG}: Architecture must be set in [default.global.parameters] parameter_overrides")
        return None
    for cmd, section in sections.items():
        if cmd != "global" and "parameter_overrides" in section.get("parameters", {}):
            fail(f"{SAMCONFIG}: [default.{cmd}.parameters] sets parameter_overrides: build and deploy "
                 "could then use different parameters (set them in [default.global.parameters])")
    return m.group(1)


def check_doc_commands(run_them):
    arch = samconfig_architecture()
    # `sam deploy -t .aws-sam/build/template.yaml` reads the template before its parameters:
    # without a build, the source template stands in for the built one while the commands run.
    stand_in = ".aws-sam/build/template.yaml"
    created = run_them and not os.path.exists(stand_in)
    if created:
        os.makedirs(os.path.dirname(stand_in), exist_ok=True)
        with open(stand_in, "w", encoding="utf-8") as f:
            f.write(read(MAIN))
    try:
        _check_doc_commands(run_them, arch)
    finally:
        if created:
            os.remove(stand_in)
            try:
                os.removedirs(os.path.dirname(stand_in))
            except OSError:
                pass  # something else lives in .aws-sam


def _check_doc_commands(run_them, arch):
    commands = list(sam_commands())
    if not any(argv[1] == "build" for _, argv, _ in commands) or not any(argv[1] == "deploy" for _, argv, _ in commands):
        fail(f"no `sam build` / `sam deploy` command found in {DOCS}: the extractor is broken")
    config_path = os.path.abspath(SAMCONFIG)
    for where, argv, at_root in commands:
        sub = argv[1]
        before = len(failures)
        if not at_root:
            fail(f"{where}: `{' '.join(argv)}` must follow `{ROOT_CD}` in its block (relative paths)")
        if option(argv, "--config-file") != CONFIG_ARG:
            fail(f'{where}: `sam {sub}` must name the config file: --config-file "{CONFIG_ARG}"')
        template = option(argv, "-t", "--template", "--template-file")
        if sub in TEMPLATES and template not in TEMPLATES[sub]:
            fail(f"{where}: `sam {sub}` must name its template with -t (one of {sorted(TEMPLATES[sub])}), got {template}")
        for banned in ("--parameter-overrides", "--guided", "-g"):
            if banned in argv:
                fail(f"{where}: `sam {sub}` uses {banned}: parameters belong in {SAMCONFIG} "
                     "(global parameter_overrides), the one place build and deploy both read")
        for a in argv[2:]:
            flag = a.split("=", 1)[0]
            if flag.startswith("-") and flag not in help_flags(sub):
                fail(f"{where}: `sam {sub} --help` lists no {flag}")
        if run_them and len(failures) == before and sub in ("build", "deploy", "package", "publish", "validate"):
            config, params, tail = config_seen(argv)
            if config != config_path:
                fail(f"{where}: `sam {sub}` read {config}, not {config_path}: {tail}")
            elif sub in ("build", "deploy") and (params or {}).get("Architecture") != arch:
                fail(f"{where}: `sam {sub}` resolved Architecture {(params or {}).get('Architecture')}, "
                     f"not {SAMCONFIG}'s {arch}: {tail}")
        if len(failures) == before:
            ok(f"{where}: sam {sub} (root, {SAMCONFIG}, -t {template}"
               + (f", Architecture {arch}" if sub in ("build", "deploy") else "") + ")")


def check_build(arch):
    """The docs' `sam build` for real, then the bootstrap's ELF machine."""
    where, argv, _ = next(c for c in sam_commands() if c[1][1] == "build")
    cmd = [SAM] + [a.replace("$PWD", os.getcwd()) for a in argv[1:]]
    print(f"running {where}: {' '.join(cmd)}")
    env = dict(os.environ, SAM_CLI_TELEMETRY="0")
    if subprocess.run(cmd, env=env).returncode != 0:
        fail(f"{where}: sam build failed")
        return
    boot = ".aws-sam/build/BrokerFunction/bootstrap"
    with open(boot, "rb") as f:
        head = f.read(20)
    machine = int.from_bytes(head[18:20], "little")
    want = {"x86_64": 62, "arm64": 183}[arch]
    if head[:4] != b"\x7fELF" or machine != want:
        fail(f"{boot}: ELF machine {machine}, but {SAMCONFIG} says {arch} ({want})")
        return
    built = yaml_parse(read(".aws-sam/build/template.yaml"))
    meta = built["Metadata"]["AWS::ServerlessRepo::Application"]
    for key in ("LicenseUrl", "ReadmeUrl"):
        path = os.path.normpath(os.path.join(".aws-sam/build", meta[key]))
        if not os.path.isfile(path):
            fail(f"the built template's {key} {meta[key]} does not resolve ({path}): sam package would not find it")
    ok(f"{where}: the built bootstrap is {arch} (ELF machine {machine}); the built template's license and readme resolve")


# ------------------------------------------------------------------------------------------
# 7. Between ticks and across accounts: the report queue, its mapping, the follow-up and
#    credentials-event permissions, the consumer policy, the cross-account options
# ------------------------------------------------------------------------------------------


def resolved(path, overrides):
    """Resource name -> (Type, resolved Properties, DependsOn) of the translated template for
    these parameters (defaults otherwise); resources whose condition is false are left out."""
    package = {"PackageS3Bucket": "bucket", "PackageS3Key": "key.zip"}
    template = translated(path)
    r = Resolver(template, dict(package, **overrides))
    out = {}
    for name, res in template["Resources"].items():
        if "Condition" in res and not r.condition(res["Condition"]):
            continue
        depends = res.get("DependsOn", [])
        out[name] = (res["Type"], r.value(res.get("Properties", {})),
                     [depends] if isinstance(depends, str) else depends)
    return out


def rules_pass(path, overrides):
    """The template's Rules for these parameters: the AssertDescriptions of failed assertions
    (CloudFormation refuses the stack with them)."""
    template = yaml_parse(read(path))
    params = {}
    for name, p in template.get("Parameters", {}).items():
        value = overrides.get(name, p.get("Default", f"<{name}>"))
        params[name] = str(value).split(",") if p.get("Type") == "CommaDelimitedList" else value

    def ev(node):
        if isinstance(node, list):
            return [ev(n) for n in node]
        if not isinstance(node, dict):
            return node
        (key, arg), = node.items()
        if key == "Ref":
            return params[arg]
        if key == "Fn::Equals":
            a, b = ev(arg)
            return str(a) == str(b)
        if key == "Fn::Not":
            return not ev(arg[0])
        if key == "Fn::And":
            return all(ev(a) for a in arg)
        if key == "Fn::Or":
            return any(ev(a) for a in arg)
        if key == "Fn::EachMemberEquals":
            items, value = ev(arg)
            return all(str(i) == str(value) for i in items)
        raise ValueError(f"rule function {key} not evaluated here")

    failed = []
    for rule in template.get("Rules", {}).values():
        if "RuleCondition" in rule and not ev(rule["RuleCondition"]):
            continue
        failed += [a["AssertDescription"] for a in rule["Assertions"] if not ev(a["Assert"])]
    return failed


def statements(props, key):
    doc = props.get(key, {})
    st = doc.get("Statement", [])
    return st if isinstance(st, list) else [st]


def as_list(v):
    return v if isinstance(v, list) else [v]


def check_between_ticks(path):
    problems = []
    need = lambda ok_, what: ok_ or problems.append(what)
    res = resolved(path, {})
    fn = res["BrokerFunction"][1]
    queue = res.get("ReportQueue", (None, {}))[1]
    need(queue.get("FifoQueue") is True and queue.get("ContentBasedDeduplication") is True,
         f"ReportQueue must be FIFO with content-based deduplication: {queue}")
    need(queue.get("SqsManagedSseEnabled") is True or "KmsMasterKeyId" in queue,
         f"ReportQueue must be encrypted: {queue}")
    need(queue.get("VisibilityTimeout") == 6 * fn["Timeout"],
         f"ReportQueue VisibilityTimeout {queue.get('VisibilityTimeout')} must be six times the function timeout {fn['Timeout']}")
    mappings = [(n, p, d) for n, (t, p, d) in res.items() if t == "AWS::Lambda::EventSourceMapping"]
    need(len(mappings) == 1, f"one event source mapping expected, found {[m[0] for m in mappings]}")
    for name, p, depends in mappings:
        need(p.get("EventSourceArn") == {"Fn::GetAtt": ["ReportQueue", "Arn"]}, f"{name} polls {p.get('EventSourceArn')}")
        need(p.get("ScalingConfig", {}).get("MaximumConcurrency") == 2, f"{name} needs ScalingConfig.MaximumConcurrency 2: {p}")
        need(1 <= p.get("BatchSize", 10) <= 10, f"{name} BatchSize {p.get('BatchSize')}")
        need("FunctionResponseTypes" not in p, f"{name}: no partial batch responses (records are never retried)")
        need("ReportQueuePolicy" in depends, f"{name} must depend on ReportQueuePolicy (the poller's permissions of a given role)")
    # Consumers may send to the queue and nothing else of SQS.
    consumer = res["ConsumerReadPolicy"][1]
    sqs = [s for s in statements(consumer, "PolicyDocument") if any(str(a).startswith("sqs:") for a in as_list(s["Action"]))]
    need([(as_list(s["Action"]), s["Resource"]) for s in sqs] == [(["sqs:SendMessage"], {"Fn::GetAtt": ["ReportQueue", "Arn"]})],
         f"ConsumerReadPolicy must allow sqs:SendMessage on ReportQueue only: {sqs}")
    # The created role polls the queue.
    role = res["BrokerRole"][1]
    poll = [s for p in role["Policies"] for s in statements(p, "PolicyDocument") if s.get("Sid") == "ReportQueuePoller"]
    need(poll and sorted(as_list(poll[0]["Action"])) == ["sqs:DeleteMessage", "sqs:GetQueueAttributes", "sqs:ReceiveMessage"]
         and poll[0]["Resource"] == {"Fn::GetAtt": ["ReportQueue", "Arn"]}, f"BrokerRole ReportQueuePoller: {poll}")
    # Every invoke permission on the function: a service scoped by SourceArn, or the
    # function's own role (follow-ups); no IAM statement grants lambda:* anywhere.
    principals = {}
    for name, (t, p, _) in res.items():
        if t == "AWS::Lambda::Permission":
            need(p.get("FunctionName") in ({"Fn::GetAtt": ["BrokerFunction", "Arn"]}, {"Ref": "BrokerFunction"}),
                 f"{name} is on {p.get('FunctionName')}")
            principals[name] = p.get("Principal")
            if str(p.get("Principal", "")).endswith(".amazonaws.com"):
                need("SourceArn" in p, f"{name}: a service principal needs SourceArn")
        if t in ("AWS::IAM::Role", "AWS::IAM::ManagedPolicy", "AWS::IAM::Policy", "AWS::IAM::RolePolicy"):
            docs = [d for pol in p.get("Policies", []) for d in statements(pol, "PolicyDocument")] + statements(p, "PolicyDocument")
            for s in docs:
                if any(str(a).startswith("lambda:") for a in as_list(s.get("Action", []))):
                    problems.append(f"{name} grants {s['Action']} on {s.get('Resource')}: invoke grants belong on the function")
    need(principals.get("FollowUpPermission") == {"Fn::GetAtt": ["BrokerRole", "Arn"]},
         f"FollowUpPermission must let the function's role invoke it: {principals.get('FollowUpPermission')}")
    # Credentials changed: the native rule on by default, the CloudTrail one off.
    rule = res.get("CredentialsChangedRule", (None, {}))[1]
    pattern = rule.get("EventPattern", {})
    need(pattern.get("detail-type") == ["Secret Label Updated"] and pattern.get("detail") == {"labelUpdated": ["AWSCURRENT"]}
         and "resources" not in pattern, f"CredentialsChangedRule (default, no prefix): {pattern}")
    need("CredentialsApiCallsRule" not in res, "the CloudTrail rule must be off by default")
    need("Dashboard" in res, "the dashboard must be on by default")
    for absent in ("TokenSecretResourcePolicy", "SecretsKey"):
        need(absent not in res, f"{absent} must be off by default")
    need(not rules_pass(path, {}), f"the default parameters break a rule: {rules_pass(path, {})}")

    # A prefix scopes both rules; the CloudTrail rule when asked.
    res = resolved(path, {"FleetNamePrefix": "acme/", "EnableCloudTrailCredentialsRule": "true"})
    scoped = res["CredentialsChangedRule"][1]["EventPattern"].get("resources", [])
    need(scoped[:1] == [{"prefix": {"Fn::Sub": "arn:${AWS::Partition}:secretsmanager:${AWS::Region}:${AWS::AccountId}:secret:${FleetNamePrefix}"}}]
         and len(scoped) == 2, f"CredentialsChangedRule with FleetNamePrefix: {scoped}")
    ct = res.get("CredentialsApiCallsRule", (None, {}))[1].get("EventPattern", {})
    need(sorted(ct.get("detail", {}).get("eventName", [])) == ["PutSecretValue", "UpdateSecret", "UpdateSecretVersionStage"]
         and ct["detail"].get("requestParameters", {}).get("secretId", [None])[0] == {"prefix": "acme/"},
         f"CredentialsApiCallsRule with FleetNamePrefix: {ct}")

    # A role you bring: the queue policy lets it poll, the follow-up permission names it.
    own = "arn:aws:iam::123456789012:role/platform/own"
    res = resolved(path, {"RoleArn": own})
    need("BrokerRole" not in res, "BrokerRole must not exist with RoleArn")
    polls = [s for s in statements(res["ReportQueuePolicy"][1], "PolicyDocument") if s.get("Sid") == "ExecutionRolePolls"]
    need(polls and polls[0]["Principal"] == {"AWS": own}
         and sorted(as_list(polls[0]["Action"])) == ["sqs:DeleteMessage", "sqs:GetQueueAttributes", "sqs:ReceiveMessage"],
         f"with RoleArn the queue policy must let that role poll: {polls}")
    need(res["FollowUpPermission"][1].get("Principal") == own, f"FollowUpPermission with RoleArn: {res['FollowUpPermission'][1]}")

    # Readers in other accounts: refused without a customer-managed key; with one, the secret,
    # the key and the queue let exactly them in.
    readers = {"CrossAccountReaders": "111122223333,arn:aws:iam::444455556666:role/reader"}
    want = ["111122223333", "arn:aws:iam::444455556666:role/reader"]
    need(rules_pass(path, readers), "CrossAccountReaders without a customer-managed key must be refused")
    need(rules_pass(path, {"CreateKmsKey": "true", "KmsKeyArn": "arn:aws:kms:us-east-1:123456789012:key/k"}),
         "CreateKmsKey together with KmsKeyArn must be refused")
    for key in ({"CreateKmsKey": "true"}, {"KmsKeyArn": "arn:aws:kms:us-east-1:123456789012:key/k"}):
        need(not rules_pass(path, dict(readers, **key)), f"CrossAccountReaders with {key} must pass the rules")
    res = resolved(path, dict(readers, CreateKmsKey="true"))
    rp = res.get("TokenSecretResourcePolicy", (None, {}))[1]
    need(rp.get("BlockPublicPolicy") is True and rp.get("SecretId") == {"Ref": "TokenSecret"}
         and [s["Principal"] for s in statements(rp, "ResourcePolicy")] == [{"AWS": want}]
         and sorted(statements(rp, "ResourcePolicy")[0]["Action"]) == ["secretsmanager:DescribeSecret", "secretsmanager:GetSecretValue"],
         f"TokenSecretResourcePolicy: {rp}")
    key = [s for s in statements(res["SecretsKey"][1], "KeyPolicy") if s.get("Sid") == "CrossAccountReadersDecryptViaSecretsManager"]
    need(key and key[0]["Principal"] == {"AWS": want}
         and key[0]["Condition"] == {"StringEquals": {"kms:ViaService": {"Fn::Sub": "secretsmanager.${AWS::Region}.amazonaws.com"}}},
         f"SecretsKey key policy for the readers: {key}")
    need(res["TokenSecret"][1].get("KmsKeyId") == {"Fn::GetAtt": ["SecretsKey", "Arn"]}, "the token secret must use the created key")
    send = [s for s in statements(res["ReportQueuePolicy"][1], "PolicyDocument") if s.get("Sid") == "CrossAccountReports"]
    need(send and send[0]["Principal"] == {"AWS": want} and send[0]["Action"] == "sqs:SendMessage",
         f"the queue policy must let the readers report: {send}")
    for p in problems:
        fail(f"{path}: {p}")
    if not problems:
        ok(f"{path}: report queue (FIFO, deduplicated, encrypted, visibility 6 x {fn['Timeout']} s), mapping "
           "(max concurrency 2, no partial batches), consumers send only, follow-ups by the function's own role "
           "(created or given), credentials rules (native on, CloudTrail off, prefix-scoped), cross-account readers "
           "refused without a CMK and let in by secret, key and queue policies")


if __name__ == "__main__":
    check_prebuilt_is_derived()
    check_prebuilt_translates()
    check_quota_10_account()
    for template_path in (MAIN, PREBUILT):
        check_between_ticks(template_path)
    check_sar_patterns_catch_bad_values()
    check_sar_metadata()
    check_doc_commands(run_them="--no-run" not in sys.argv)
    if "--build" in sys.argv and not failures:
        check_build(samconfig_architecture())
    if failures:
        print(f"{len(failures)} SAM check(s) failed", file=sys.stderr)
        sys.exit(1)
