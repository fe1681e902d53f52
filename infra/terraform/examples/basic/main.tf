# Example root module: deploys the broker with its defaults, from a release zip built once
# with `make dist` (or a release asset of your fork): no Rust toolchain needed here.
#
#   (cd dist && sha256sum -c SHA256SUMS --ignore-missing)
#   terraform init && terraform apply -var package=../../../../dist/iadvize-token-broker-0.1.0-x86_64.zip
#   then put the credentials and run a first tick: infra/README.md "Put the credentials".
#
# With aws_endpoint_url set, every call goes to a local stand-in (moto) with dummy
# credentials; `make test-infra-apply` does that.

locals {
  local_endpoint = var.aws_endpoint_url != null
}

provider "aws" {
  region = var.region

  # Only for a local stand-in: no real account, no metadata service, path-style S3.
  access_key                  = local.local_endpoint ? "testing" : null
  secret_key                  = local.local_endpoint ? "testing" : null
  skip_credentials_validation = local.local_endpoint
  skip_requesting_account_id  = local.local_endpoint
  skip_metadata_api_check     = local.local_endpoint
  skip_region_validation      = local.local_endpoint
  s3_use_path_style           = local.local_endpoint

  dynamic "endpoints" {
    for_each = local.local_endpoint ? [var.aws_endpoint_url] : []
    content {
      cloudwatch     = endpoints.value
      cloudwatchlogs = endpoints.value
      eventbridge    = endpoints.value
      iam            = endpoints.value
      kms            = endpoints.value
      lambda         = endpoints.value
      s3             = endpoints.value
      secretsmanager = endpoints.value
      sns            = endpoints.value
      sqs            = endpoints.value
      sts            = endpoints.value
    }
  }
}

module "broker" {
  source = "../.."

  name                    = var.name
  local_existing_package  = var.package
  architecture            = var.architecture
  alarm_email             = var.alarm_email
  replica_regions         = var.replica_regions
  recovery_window_in_days = var.recovery_window_in_days

  tags = {
    application = "iadvize-token-broker"
  }
}
