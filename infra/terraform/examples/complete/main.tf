# Example root module with every option of the module set: the package from S3, a
# customer-managed KMS key, a replica, two more integrations found by tag, alarms to an
# existing SNS topic and by e-mail, a role with a path and a permissions boundary (or your
# own role), the function in a VPC, an encrypted log group, native rotation and every
# broker setting. The things a real account already has (key, topic, boundary, subnets,
# bucket) come in as variables.
#
#   aws s3 cp iadvize-token-broker-0.1.0-arm64.zip s3://my-artifacts/iadvize-token-broker/
#   terraform init && terraform apply -var-file=my.tfvars
#
# With aws_endpoint_url set, every call goes to a local stand-in (moto) with dummy
# credentials; `make test-infra-apply` applies it there.

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
      ec2            = endpoints.value
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

# Your own execution role (bring_your_own_role = true): the module then creates none, and
# you attach the policy it needs (its broker_policy_json output).
data "aws_iam_policy_document" "assume" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["lambda.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "own" {
  count = var.bring_your_own_role ? 1 : 0

  name                 = "${var.name}-own-role"
  path                 = var.role_path
  assume_role_policy   = data.aws_iam_policy_document.assume.json
  permissions_boundary = var.permissions_boundary_arn
}

resource "aws_iam_role_policy" "own" {
  count = var.bring_your_own_role ? 1 : 0

  name   = "broker"
  role   = aws_iam_role.own[0].id
  policy = module.broker.broker_policy_json
}

resource "aws_iam_role_policy_attachment" "own_vpc" {
  count = var.bring_your_own_role ? 1 : 0

  role       = aws_iam_role.own[0].name
  policy_arn = "arn:aws:iam::aws:policy/service-role/AWSLambdaVPCAccessExecutionRole"
}

module "broker" {
  source = "../.."

  name = var.name
  tags = { application = "iadvize-token-broker", environment = "example" }
  # Per-resource tags, merged over tags.
  function_tags     = { component = "function" }
  iam_tags          = { component = "iam" }
  secret_tags       = { component = "secrets", data-classification = "confidential" }
  log_group_tags    = { component = "logs" }
  event_rule_tags   = { component = "events" }
  alarm_tags        = { component = "alarms" }
  report_queue_tags = { component = "reports" }
  kms_key_tags      = { component = "kms" }

  # Package: a release zip uploaded to S3 (versioned bucket: a new version redeploys).
  s3_bucket         = var.package_s3_bucket
  s3_key            = var.package_s3_key
  s3_object_version = var.package_s3_object_version
  architecture      = var.architecture
  memory_size       = 256
  timeout           = 180

  # One invocation at a time, for accounts whose concurrency quota allows a reservation.
  reserved_concurrent_executions = var.reserved_concurrent_executions

  # Schedule, logs, alarms, dashboard.
  create_schedule       = true
  create_alarms         = true
  create_dashboard      = true
  schedule_expression   = "rate(1 hour)"
  log_retention_days    = 90
  log_kms_key_arn       = var.log_kms_key_arn
  application_log_level = "DEBUG"
  alarm_email           = var.alarm_email
  alarm_topic_arns      = var.alarm_topic_arns

  # Secrets of the built-in integration.
  token_secret_name      = "${var.name}/main/token"
  credentials_secret_arn = var.credentials_secret_arn
  kms_key_arn            = var.create_kms_key ? null : var.kms_key_arn
  # The module's own key: needed by readers in other accounts (cross_account_readers), who
  # then may read the token and report to the queue.
  create_kms_key          = var.create_kms_key
  cross_account_readers   = var.cross_account_readers
  replica_regions         = var.replica_regions
  recovery_window_in_days = var.recovery_window_in_days

  # Fleet: more integrations, onboarded by tag, each with its own consumer policy.
  integrations = {
    shop = {}
    support = {
      tags        = { team = "support" }
      kms_key_arn = var.kms_key_arn
    }
  }
  fleet_name_prefix  = "${var.name}/"
  fleet_kms_key_arns = var.fleet_kms_key_arns

  # Locked-down account.
  create_role              = !var.bring_your_own_role
  role_arn                 = var.bring_your_own_role ? aws_iam_role.own[0].arn : null
  role_path                = var.role_path
  permissions_boundary_arn = var.permissions_boundary_arn
  subnet_ids               = var.subnet_ids
  security_group_ids       = var.security_group_ids

  # Broker configuration (IADVIZE_*).
  api_url                   = var.api_url
  refresh_before_expiry     = "4h"
  min_login_interval        = "10s"
  stuck_rotation_after      = "15m"
  http_timeout              = "10s"
  verify_token              = true
  max_concurrency           = 8
  refused_credentials_retry = "6h"
  max_logins_per_minute     = 30
  per_secret_metrics        = false
  report_verify_interval    = "1m"
  max_follow_ups            = 10
  throttle_pause            = "60s"

  # Credentials changed: the native event (on by default) and the CloudTrail records (needs a
  # trail that logs management events).
  create_credentials_changed_rule    = true
  create_cloudtrail_credentials_rule = true

  enable_native_rotation       = var.enable_native_rotation
  rotation_schedule_expression = "rate(20 hours)"
}
