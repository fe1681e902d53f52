#!/usr/bin/env bash
# Release artifacts into dist/ (run by `make dist`, which installs cargo-lambda and cargo-cyclonedx):
#
#   dist/iadvize-token-broker-<version>-<arch>.zip        Lambda package, `bootstrap` at the root
#   dist/iadvize-token-broker-<version>-<arch>.cdx.json   CycloneDX SBOM of the Lambda binary's crates
#   dist/iadvize-token-<version>-<arch>-linux.tar.gz     the operator CLI: iadvize-token, its shell
#                                                         completions and man page, the licences
#   dist/iadvize-token-<version>-<arch>-linux.cdx.json   CycloneDX SBOM of the CLI's crates
#   dist/iadvize-token.bash, _iadvize-token, iadvize-token.fish, iadvize-token.1
#                                                         completions (bash, zsh, fish), man page
#   dist/SHA256SUMS                                       `sha256sum -c SHA256SUMS` checks them
#
# A zip over the size budget (scripts/check-zip-size.sh: 4,000,000 bytes unless MAX_ZIP_BYTES
# says otherwise) fails the run: it is removed and no SHA256SUMS is written.
#
# usage: scripts/dist.sh ARCH...   (ARCH: x86_64, arm64)
#
# Reproducible: paths are remapped out of the binary, the zip has one entry with a fixed time
# (SOURCE_DATE_EPOCH, the last commit's time by default) and fixed permissions, the SBOM honours
# SOURCE_DATE_EPOCH. The build has its own target folder (target/dist) so that the RUSTFLAGS
# below do not invalidate the everyday builds in target/.
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -gt 0 ] || { echo "usage: $0 ARCH..." >&2; exit 2; }

bin=iadvize-token-broker
cli=iadvize-token
python=${PYTHON:-python3}
cyclonedx=${CARGO_CYCLONEDX:-.tools/bin/cargo-cyclonedx}
version=$("$python" -c 'import tomllib; print(tomllib.load(open("Cargo.toml", "rb"))["package"]["version"])')
if [ -z "${SOURCE_DATE_EPOCH:-}" ]; then
  SOURCE_DATE_EPOCH=$(git log -1 --format=%ct 2>/dev/null || echo 315532800)
fi
export SOURCE_DATE_EPOCH
export CARGO_TARGET_DIR=$PWD/target/dist
cargo_home=${CARGO_HOME:-$HOME/.cargo}
# No build-machine paths in the binary (panic locations of dependencies carry them).
export RUSTFLAGS="${RUSTFLAGS:-} --remap-path-prefix=$PWD=/build --remap-path-prefix=$cargo_home=/cargo"

mkdir -p dist
cli_bins=()
cli_dirs=()
# Written last, only when every zip passed.
rm -f dist/SHA256SUMS
for arch in "$@"; do
  case $arch in
    x86_64) flag=--x86-64 triple=x86_64-unknown-linux-gnu ;;
    arm64) flag=--arm64 triple=aarch64-unknown-linux-gnu ;;
    *) echo "dist: unknown architecture $arch (x86_64 or arm64)" >&2; exit 2 ;;
  esac
  name=$bin-$version-$arch
  echo "dist: release build for $arch (a first build takes 5 to 10 minutes on 2 cores)"
  start=$SECONDS
  cargo lambda build --release "$flag" --bin "$bin" --output-format binary
  echo "dist: $arch built in $((SECONDS - start)) s"
  # One entry named bootstrap, mode 0755, a fixed time: the same binary gives the same zip.
  "$python" - "$CARGO_TARGET_DIR/lambda/$bin/bootstrap" "dist/$name.zip" <<'PY'
import os, sys, time, zipfile
src, dst = sys.argv[1], sys.argv[2]
stamp = time.gmtime(max(int(os.environ["SOURCE_DATE_EPOCH"]), 315532800))[:6]  # zip starts in 1980
info = zipfile.ZipInfo("bootstrap", date_time=stamp)
info.create_system = 3  # Unix, so that the mode below is honoured
info.external_attr = (0o100755 & 0xFFFF) << 16
info.compress_type = zipfile.ZIP_DEFLATED
with open(src, "rb") as f, zipfile.ZipFile(dst + ".part", "w") as z:
    z.writestr(info, f.read(), compresslevel=9)
os.replace(dst + ".part", dst)
PY
  if ! scripts/check-zip-size.sh "dist/$name.zip"; then
    rm -f "dist/$name.zip"
    echo "dist: removed dist/$name.zip; the binary is $CARGO_TARGET_DIR/lambda/$bin/bootstrap" >&2
    exit 1
  fi
  # SBOM of the broker crate's normal dependencies for this target (what the binary links).
  "$cyclonedx" cyclonedx --quiet --format json --spec-version 1.5 --all --no-build-deps \
    --target "$triple" --override-filename "$name.cdx" --manifest-path Cargo.toml
  # The SBOM's bom-refs name the checkout's path: the same /build as the binary, so that
  # two checkouts of one commit give the same SBOM.
  sed "s#path+file://$PWD#path+file:///build#g" "$name.cdx.json" > "dist/$name.cdx.json"
  rm -f "$name.cdx.json"
  rm -f standins/"$name".cdx.json
  ls -l "dist/$name.zip" "dist/$name.cdx.json"

  # The operator CLI for the same architecture, in its own cargo invocation: built together,
  # the CLI's features would be unified into the Lambda binary's dependencies.
  cli_name=$cli-$version-$arch-linux
  echo "dist: CLI release build for $arch"
  start=$SECONDS
  cargo lambda build --release "$flag" --package iadvize-token-cli --bin "$cli" --output-format binary
  echo "dist: CLI for $arch built in $((SECONDS - start)) s"
  # cargo-lambda moves the binary it builds to lambda/<name>/bootstrap, as for the Lambda,
  # and the next architecture's build replaces it: keep this one's under its own name.
  cp "$CARGO_TARGET_DIR/lambda/$cli/bootstrap" "$CARGO_TARGET_DIR/$cli_name"
  cli_bins+=("$CARGO_TARGET_DIR/$cli_name")
  cli_dirs+=("$cli_name")
  "$cyclonedx" cyclonedx --quiet --format json --spec-version 1.5 --all --no-build-deps \
    --target "$triple" --override-filename "$cli_name.cdx" --manifest-path cli/Cargo.toml
  sed "s#path+file://$PWD#path+file:///build#g" "cli/$cli_name.cdx.json" > "dist/$cli_name.cdx.json"
  rm -f cli/"$cli_name".cdx.json "$cli_name".cdx.json standins/"$cli_name".cdx.json consumer/"$cli_name".cdx.json
done

# Completions and the man page come from the CLI itself: from a binary this machine runs (one
# of the above, or a build for this machine).
runner=""
for candidate in "${cli_bins[@]}"; do
  if "$candidate" --version >/dev/null 2>&1; then runner=$candidate; break; fi
done
if [ -z "$runner" ]; then
  echo "dist: none of the CLI builds runs here; building one for this machine for the completions"
  cargo build --release --quiet --package iadvize-token-cli --bin "$cli"
  runner=$CARGO_TARGET_DIR/release/$cli
fi
"$runner" completions bash > dist/$cli.bash
"$runner" completions zsh > dist/_$cli
"$runner" completions fish > dist/$cli.fish
"$runner" manpage > dist/$cli.1
# Every page (the command's and one per subcommand) for the archives.
man_pages=$(mktemp -d)
trap 'rm -rf "$man_pages"' EXIT
"$runner" manpage "$man_pages"

# One folder per architecture (binary, completions, man page, licences), as a tar.gz with
# fixed times, owners and modes: the same binary gives the same archive.
for i in "${!cli_bins[@]}"; do
  "$python" - "${cli_bins[$i]}" "dist/${cli_dirs[$i]}.tar.gz" "${cli_dirs[$i]}" "$cli" "$man_pages" <<'PY'
import gzip, io, os, sys, tarfile, time
binary, dst, top, cli, man = sys.argv[1:]
stamp = max(int(os.environ["SOURCE_DATE_EPOCH"]), 0)
entries = [
    (binary, cli, 0o755),
    (f"dist/{cli}.bash", f"completions/{cli}.bash", 0o644),
    (f"dist/_{cli}", f"completions/_{cli}", 0o644),
    (f"dist/{cli}.fish", f"completions/{cli}.fish", 0o644),
    *((os.path.join(man, page), f"man/{page}", 0o644) for page in sorted(os.listdir(man))),
    ("LICENSE-MIT", "LICENSE-MIT", 0o644),
    ("LICENSE-APACHE", "LICENSE-APACHE", 0o644),
]
raw = io.BytesIO()
with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
    for src, name, mode in entries:
        with open(src, "rb") as f:
            data = f.read()
        info = tarfile.TarInfo(f"{top}/{name}")
        info.size, info.mode, info.mtime = len(data), mode, stamp
        info.uid = info.gid = 0
        info.uname = info.gname = ""
        tar.addfile(info, io.BytesIO(data))
with open(dst + ".part", "wb") as out:
    with gzip.GzipFile(filename="", mode="wb", fileobj=out, mtime=stamp, compresslevel=9) as gz:
        gz.write(raw.getvalue())
os.replace(dst + ".part", dst)
PY
  ls -l "dist/${cli_dirs[$i]}.tar.gz" "dist/${cli_dirs[$i]}.cdx.json"
done

(cd dist && rm -f SHA256SUMS && sha256sum -- *.zip *.tar.gz *.cdx.json $cli.bash _$cli $cli.fish $cli.1 > SHA256SUMS.part && mv SHA256SUMS.part SHA256SUMS)
echo "dist: dist/SHA256SUMS"
cat dist/SHA256SUMS
