#!/usr/bin/env bash
# Release artifacts into dist/ (run by `make dist`, which installs cargo-lambda and cargo-cyclonedx):
#
#   dist/iadvize-token-broker-<version>-<arch>.zip        Lambda package, `bootstrap` at the root
#   dist/iadvize-token-broker-<version>-<arch>.cdx.json   CycloneDX SBOM of the Lambda binary's crates
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
  rm -f standin/"$name".cdx.json
  ls -l "dist/$name.zip" "dist/$name.cdx.json"
done

(cd dist && rm -f SHA256SUMS && sha256sum -- *.zip *.cdx.json > SHA256SUMS.part && mv SHA256SUMS.part SHA256SUMS)
echo "dist: dist/SHA256SUMS"
cat dist/SHA256SUMS
