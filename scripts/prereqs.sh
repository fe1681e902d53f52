#!/usr/bin/env bash
# Checks the tools a make target needs before anything else runs, and stops with one line that
# says what to install. Debian packages that exist (nodejs, npm, jq, curl, python3-venv) are
# installed with apt-get when running as root on a machine that has it (CI containers).
#
# usage: scripts/prereqs.sh TARGET TOOL...
#   TOOL: cargo python3 terraform node npm jq curl go go-aws-sdk (the AWS SDK for Go v2 as Debian
#   packages it, for the Go reader's GOPATH build)
set -euo pipefail
target=$1
shift

# How to get each tool: a Debian package name (installable by apt-get), or a hint.
apt_package() {
  case $1 in
    node) echo nodejs ;;
    npm) echo npm ;;
    jq) echo jq ;;
    curl) echo curl ;;
    go) echo golang-go ;;
    go-aws-sdk) echo golang-github-aws-aws-sdk-go-v2-dev ;;
    python3-venv) echo python3-venv ;;
    *) echo "" ;;
  esac
}
hint() {
  case $1 in
    cargo) echo "Rust 1.88+ with clippy and rustfmt (https://rustup.rs)" ;;
    clippy | rustfmt) echo "rustup component add clippy rustfmt" ;;
    python3) echo "Python $python_min+ (Debian: apt-get install python3 python3-venv)" ;;
    python3-venv) echo "the Python venv module (Debian: apt-get install python3-venv)" ;;
    terraform) echo "Terraform 1.4+ (https://developer.hashicorp.com/terraform/install)" ;;
    node) echo "Node.js 20+ (Debian: apt-get install nodejs)" ;;
    go) echo "Go 1.19+ (Debian: apt-get install golang-go)" ;;
    go-aws-sdk) echo "the AWS SDK for Go v2 in /usr/share/gocode (Debian: apt-get install golang-github-aws-aws-sdk-go-v2-dev)" ;;
    *) echo "$1 (Debian: apt-get install $1)" ;;
  esac
}

# The pinned moto, SAM CLI, awscli and boto3 declare Requires-Python >= 3.10; scripts/dist.sh
# reads Cargo.toml with tomllib (3.11).
python_min=3.10
[ "$target" = dist ] && python_min=3.11

missing=()
for tool in "$@"; do
  case $tool in
    cargo)
      command -v cargo >/dev/null || { missing+=(cargo); continue; }
      if [ "$target" = test ] || [ "$target" = lint ]; then
        cargo clippy --version >/dev/null 2>&1 || missing+=(clippy)
        cargo fmt --version >/dev/null 2>&1 || missing+=(rustfmt)
      fi
      ;;
    python3)
      if ! command -v python3 >/dev/null ||
        ! python3 -c 'import sys; sys.exit(sys.version_info < tuple(map(int, sys.argv[1].split("."))))' "$python_min"; then
        missing+=(python3)
      elif ! python3 -c 'import ensurepip, venv' 2>/dev/null; then
        missing+=(python3-venv)
      fi
      ;;
    go-aws-sdk)
      # Debian's package puts every service in one tree; the Go reader needs these two.
      for service in secretsmanager sqs; do
        [ -d "/usr/share/gocode/src/github.com/aws/aws-sdk-go-v2/service/$service" ] || { missing+=(go-aws-sdk); break; }
      done
      ;;
    *) command -v "$tool" >/dev/null || missing+=("$tool") ;;
  esac
done
[ ${#missing[@]} -eq 0 ] && exit 0

# Install what Debian has, when allowed to; the rest is for the user.
packages=()
for tool in "${missing[@]}"; do
  p=$(apt_package "$tool")
  [ -n "$p" ] && packages+=("$p")
done
if [ ${#packages[@]} -gt 0 ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null && [ "${PREREQS_NO_APT:-}" != 1 ]; then
  echo "prereqs: installing ${packages[*]} with apt-get (apt-get update first; about a minute)" >&2
  if DEBIAN_FRONTEND=noninteractive apt-get update -q >/dev/null &&
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${packages[@]}" >/dev/null; then
    PREREQS_NO_APT=1 exec "$0" "$target" "$@"
  fi
  echo "prereqs: apt-get could not install ${packages[*]}" >&2
fi

line=""
for tool in "${missing[@]}"; do line+="${line:+; }$(hint "$tool")"; done
echo "make $target: missing prerequisites, install: $line" >&2
exit 2
