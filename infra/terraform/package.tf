# Where the Lambda package comes from, in this order:
#   1. local_existing_package (or its old name lambda_zip_path): a prebuilt zip, e.g. a
#      release asset `iadvize-token-broker-<version>-<arch>.zip` from `make dist`;
#   2. s3_bucket + s3_key (+ s3_object_version): the same zip uploaded to S3;
#   3. otherwise, built from source by `make package` in the repository this module sits in.
#      Terraform checks out the whole repository for a git source
#      (git::https://…/iadvize-token-broker.git//infra/terraform?ref=<commit>), so this works
#      there too, on a machine with Rust, Python 3 and make.

locals {
  local_package   = coalesce(var.local_existing_package, var.lambda_zip_path, "-")
  package_local   = local.local_package != "-"
  package_from_s3 = !local.package_local && var.s3_bucket != null
  package_build   = !local.package_local && !local.package_from_s3

  # The repository root (two levels above this module) and what the build reads.
  repo_root = "${path.module}/../.."
  build_inputs = sort(setunion(
    fileset(local.repo_root, "{Cargo.toml,Cargo.lock,Makefile,requirements-dev.txt}"),
    fileset(local.repo_root, "src/**"),
    fileset(local.repo_root, "consumer/Cargo.toml"),
    fileset(local.repo_root, "consumer/src/**"),
  ))
  # Changes when a source file or the architecture changes: the code is rebuilt and
  # uploaded only then (the build's own zip is not byte-reproducible across machines).
  source_hash = base64sha256(join("\n", concat(
    [var.architecture],
    [for f in local.build_inputs : "${f} ${filesha256("${local.repo_root}/${f}")}"],
  )))
  built_package = "${local.repo_root}/target/lambda/iadvize-token-broker/bootstrap.zip"

  package_file = (
    local.package_local ? local.local_package :
    local.package_build ? local.built_package : null
  )
  package_hash = (
    local.package_local ? filebase64sha256(local.local_package) :
    local.package_build ? local.source_hash : null
  )
}

resource "terraform_data" "package_build" {
  count = local.package_build ? 1 : 0

  triggers_replace = [local.source_hash]

  provisioner "local-exec" {
    working_dir = local.repo_root
    command     = "make package ARCH=${var.architecture}"
  }

  lifecycle {
    precondition {
      condition     = var.package_build
      error_message = "No Lambda package: set local_existing_package (a release zip) or s3_bucket/s3_key, or package_build = true to build it from source."
    }
  }
}
