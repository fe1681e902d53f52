# iadvize-token-broker: a Lambda that keeps valid iAdvize API access tokens in Secrets Manager
# secrets that consumers read. Same features as infra/sam/template.yaml, plus replicas in any
# number of regions and an `integrations` map for fleets.

data "aws_partition" "current" {}
data "aws_region" "current" {}
data "aws_caller_identity" "current" {}

locals {
  region     = data.aws_region.current.id
  account_id = data.aws_caller_identity.current.account_id
  partition  = data.aws_partition.current.partition

  token_secret_name  = coalesce(var.token_secret_name, "${var.name}/token")
  create_credentials = var.credentials_secret_arn == null
  credentials_secret_arn = (
    local.create_credentials ? aws_secretsmanager_secret.credentials[0].arn : var.credentials_secret_arn
  )

  # Replicas keep the primary's name and random suffix; only the region differs.
  token_replica_arns = [
    for r in keys(var.replica_regions) :
    replace(aws_secretsmanager_secret.token.arn, ":secretsmanager:${local.region}:", ":secretsmanager:${r}:")
  ]
  replica_kms_key_arns = compact(values(var.replica_regions))

  # The broker's state tags (docs/ARCHITECTURE.md, "The state kept in tags"): written by the function, never by Terraform.
  state_tag_keys = [
    "iadvize:last-login-attempt",
    "iadvize:rejected-credentials-version",
    "iadvize:last-report-verification",
  ]

  # Discovery (docs/fleets.md): exact pair on token secrets. Credentials secrets carry
  # their own tag so that the role can read them without naming each one.
  managed_tag     = { "iadvize:managed" = "true" }
  credentials_tag = { "iadvize:credentials" = "true" }
  # Secrets the broker may touch by tag; fleet_name_prefix narrows them by name too.
  fleet_secret_arns = "arn:${local.partition}:secretsmanager:${local.region}:${local.account_id}:secret:${var.fleet_name_prefix}*"

  # Every secret the module creates and the broker writes, by key ("" = the built-in one).
  integration_token_arns       = { for k, s in aws_secretsmanager_secret.integration_token : k => s.arn }
  integration_credentials_arns = { for k, s in aws_secretsmanager_secret.integration_credentials : k => s.arn }
  listed_token_arns            = concat([aws_secretsmanager_secret.token.arn], values(local.integration_token_arns))
  listed_credentials_arns      = concat([local.credentials_secret_arn], values(local.integration_credentials_arns))

  # The key of the built-in integration's secrets: the module's own (create_kms_key), the
  # one given (kms_key_arn), or null for aws/secretsmanager. Whether there is one is known at
  # plan time even when the created key's ARN is not.
  has_kms_key = var.create_kms_key || var.kms_key_arn != null
  kms_key_arn = var.create_kms_key ? aws_kms_key.secrets[0].arn : var.kms_key_arn

  secrets_kms_key_arns = distinct(compact(concat(
    [local.kms_key_arn],
    [for i in values(var.integrations) : i.kms_key_arn],
    var.fleet_kms_key_arns,
  )))

  alarm_actions = concat(aws_sns_topic.alarms[*].arn, var.alarm_topic_arns)
  # The function's ARN, known before it exists (its name is var.name).
  function_arn = "arn:${local.partition}:lambda:${local.region}:${local.account_id}:function:${var.name}"
  role_arn     = var.create_role ? aws_iam_role.broker[0].arn : var.role_arn
  role_name    = var.create_role ? aws_iam_role.broker[0].name : regex("role/(?:.*/)?([^/]+)$", var.role_arn)[0]
}

# ------------------------------------------------------------------------------------------
# Secrets of the built-in integration
# ------------------------------------------------------------------------------------------

# The output every consumer reads. No aws_secretsmanager_secret_version on purpose: a
# placeholder value would be read by consumers as a token. The first tick finds no
# AWSCURRENT, treats the secret as due and writes the first record.
# Destroying the module deletes it after recovery_window_in_days (restore-secret brings it
# back); to keep it across a rename, `terraform state mv` or import it (infra/README.md).
resource "aws_secretsmanager_secret" "token" {
  #checkov:skip=CKV2_AWS_57:The broker renews the token on its own schedule (the hourly tick); Secrets Manager rotation is optional (enable_native_rotation).
  name                    = local.token_secret_name
  description             = "iAdvize API access token maintained by iadvize-token-broker. AWSCURRENT is JSON: access_token, token_type, issued_at, expires_at, expires_in. Read-only for consumers."
  kms_key_id              = local.kms_key_arn
  recovery_window_in_days = var.recovery_window_in_days

  dynamic "replica" {
    for_each = var.replica_regions
    content {
      region     = replica.key
      kms_key_id = replica.value
    }
  }

  tags = merge(var.tags, var.secret_tags, {
    # Which credentials this token is made from (README, "The token secret").
    "iadvize:credentials-secret-id" = local.credentials_secret_arn
  })

  lifecycle {
    # The broker keeps its state in these tags; Terraform must not remove them.
    ignore_changes = [
      tags["iadvize:last-login-attempt"],
      tags["iadvize:rejected-credentials-version"],
      tags["iadvize:last-report-verification"],
      tags_all["iadvize:last-login-attempt"],
      tags_all["iadvize:rejected-credentials-version"],
      tags_all["iadvize:last-report-verification"],
    ]
  }
}

# The input: {"username","password"} of the iAdvize API user, read only by the broker.
# Created EMPTY: the operator puts the value with `aws secretsmanager put-secret-value`, so
# the password never passes through a Terraform variable or state.
resource "aws_secretsmanager_secret" "credentials" {
  #checkov:skip=CKV2_AWS_57:The iAdvize password is owned by the iAdvize administrator and cannot be rotated by AWS; a new value put here is picked up by itself.
  count = local.create_credentials ? 1 : 0

  name                    = "${local.token_secret_name}/credentials"
  description             = "iAdvize API credentials for iadvize-token-broker, created EMPTY. Put them with: aws secretsmanager put-secret-value --secret-id <this ARN> --secret-string file://creds.json (creds.json = {\"username\":\"...\",\"password\":\"...\"}). Only the broker reads it."
  kms_key_id              = local.kms_key_arn
  recovery_window_in_days = var.recovery_window_in_days
  tags                    = merge(var.tags, var.secret_tags)
}

# ------------------------------------------------------------------------------------------
# Fleets: one token and one credentials secret per integration, found by tag (no redeploy,
# no growing environment variable)
# ------------------------------------------------------------------------------------------

resource "aws_secretsmanager_secret" "integration_credentials" {
  #checkov:skip=CKV2_AWS_57:The iAdvize password is owned by the iAdvize administrator and cannot be rotated by AWS; a new value put here is picked up by itself.
  for_each = var.integrations

  name                    = "${var.name}/${each.key}/credentials"
  description             = "iAdvize API credentials of integration ${each.key} for iadvize-token-broker, created EMPTY: put {\"username\",\"password\"} with aws secretsmanager put-secret-value. Only the broker reads it."
  kms_key_id              = each.value.kms_key_arn
  recovery_window_in_days = var.recovery_window_in_days
  tags                    = merge(var.tags, var.secret_tags, each.value.tags, local.credentials_tag)
}

resource "aws_secretsmanager_secret" "integration_token" {
  #checkov:skip=CKV2_AWS_57:The broker renews the token on its own schedule (the hourly tick); Secrets Manager rotation is optional (enable_native_rotation).
  for_each = var.integrations

  name                    = "${var.name}/${each.key}/token"
  description             = "iAdvize API access token of integration ${each.key}, maintained by iadvize-token-broker. Read-only for consumers."
  kms_key_id              = each.value.kms_key_arn
  recovery_window_in_days = var.recovery_window_in_days

  dynamic "replica" {
    for_each = each.value.replica_regions
    content {
      region     = replica.key
      kms_key_id = replica.value
    }
  }

  tags = merge(var.tags, var.secret_tags, each.value.tags, local.managed_tag, {
    "iadvize:credentials-secret-id" = aws_secretsmanager_secret.integration_credentials[each.key].arn
  })

  lifecycle {
    ignore_changes = [
      tags["iadvize:last-login-attempt"],
      tags["iadvize:rejected-credentials-version"],
      tags["iadvize:last-report-verification"],
      tags_all["iadvize:last-login-attempt"],
      tags_all["iadvize:rejected-credentials-version"],
      tags_all["iadvize:last-report-verification"],
    ]
  }
}

# ------------------------------------------------------------------------------------------
# Function role: exactly the Secrets Manager calls the broker makes (tests/infra_drift.rs
# checks the action list against src/store.rs), on the secrets it manages.
# ------------------------------------------------------------------------------------------

data "aws_iam_policy_document" "assume" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["lambda.amazonaws.com"]
    }
  }
}

data "aws_iam_policy_document" "broker" {
  # The token secrets this module created and lists in IADVIZE_TOKEN_SECRET_IDS.
  statement {
    sid = "TokenSecretsListed"
    actions = [
      "secretsmanager:DescribeSecret",
      "secretsmanager:GetSecretValue",
      "secretsmanager:PutSecretValue",
      "secretsmanager:UpdateSecretVersionStage",
      "secretsmanager:ListSecretVersionIds",
    ]
    resources = local.listed_token_arns
  }

  # Token secrets onboarded by tag: exactly those carrying iadvize:managed=true now (the
  # condition reads the secret's current tags), within fleet_name_prefix.
  statement {
    sid = "TokenSecretsTagged"
    actions = [
      "secretsmanager:DescribeSecret",
      "secretsmanager:GetSecretValue",
      "secretsmanager:PutSecretValue",
      "secretsmanager:UpdateSecretVersionStage",
      "secretsmanager:ListSecretVersionIds",
    ]
    resources = [local.fleet_secret_arns]
    condition {
      test     = "StringEquals"
      variable = "secretsmanager:ResourceTag/iadvize:managed"
      values   = ["true"]
    }
  }

  # Broker state lives in tags; it may set or remove only those keys, and so can never
  # enrol a secret (iadvize:managed) or repoint one (iadvize:credentials-secret-id).
  statement {
    sid = "TokenSecretStateTagsListed"
    actions = [
      "secretsmanager:TagResource",
      "secretsmanager:UntagResource",
    ]
    resources = local.listed_token_arns
    condition {
      test     = "ForAllValues:StringEquals"
      variable = "aws:TagKeys"
      values   = local.state_tag_keys
    }
    condition {
      test     = "Null"
      variable = "aws:TagKeys"
      values   = ["false"]
    }
  }

  statement {
    sid = "TokenSecretStateTagsTagged"
    actions = [
      "secretsmanager:TagResource",
      "secretsmanager:UntagResource",
    ]
    resources = [local.fleet_secret_arns]
    condition {
      test     = "ForAllValues:StringEquals"
      variable = "aws:TagKeys"
      values   = local.state_tag_keys
    }
    condition {
      test     = "Null"
      variable = "aws:TagKeys"
      values   = ["false"]
    }
    condition {
      test     = "StringEquals"
      variable = "secretsmanager:ResourceTag/iadvize:managed"
      values   = ["true"]
    }
  }

  # Discovery lists the tagged secrets and reads up to 20 values a call; both actions only
  # exist on "*" (BatchGetSecretValue still needs GetSecretValue on each secret it returns).
  statement {
    sid       = "Discovery"
    actions   = ["secretsmanager:ListSecrets", "secretsmanager:BatchGetSecretValue"]
    resources = ["*"]
  }

  # Credentials: the value (to log in) and DescribeSecret (status reads the version id,
  # never the password). The listed ones, and those tagged iadvize:credentials=true.
  statement {
    sid       = "CredentialsListed"
    actions   = ["secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret"]
    resources = local.listed_credentials_arns
  }

  statement {
    sid       = "CredentialsTagged"
    actions   = ["secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret"]
    resources = [local.fleet_secret_arns]
    condition {
      test     = "StringEquals"
      variable = "secretsmanager:ResourceTag/iadvize:credentials"
      values   = ["true"]
    }
  }

  statement {
    sid       = "Logs"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = ["${aws_cloudwatch_log_group.broker.arn}:*"]
  }

  # The report queue's event source mapping polls with this role (Lambda's SQS poller needs
  # these three actions, and checks them when the mapping is created).
  statement {
    sid       = "ReportQueuePoller"
    actions   = ["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"]
    resources = [aws_sqs_queue.reports.arn]
  }

  # Follow-ups: the function invokes itself, and nothing else (its ARN is built from its
  # name, so the policy needs no reference to the function).
  statement {
    sid       = "FollowUps"
    actions   = ["lambda:InvokeFunction"]
    resources = [local.function_arn]
  }

  dynamic "statement" {
    for_each = length(local.secrets_kms_key_arns) == 0 ? [] : [1]
    content {
      sid       = "SecretsKmsKeys"
      actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
      resources = local.secrets_kms_key_arns
      condition {
        test     = "StringEquals"
        variable = "kms:ViaService"
        values   = ["secretsmanager.${local.region}.amazonaws.com"]
      }
    }
  }
}

resource "aws_iam_role" "broker" {
  count = var.create_role ? 1 : 0

  name                 = "${var.name}-${local.region}"
  path                 = var.role_path
  description          = "Execution role of iadvize-token-broker (least privilege)."
  assume_role_policy   = data.aws_iam_policy_document.assume.json
  permissions_boundary = var.permissions_boundary_arn
  tags                 = merge(var.tags, var.iam_tags)
}

resource "aws_iam_role_policy" "broker" {
  count = var.create_role ? 1 : 0

  name   = "broker"
  role   = aws_iam_role.broker[0].id
  policy = data.aws_iam_policy_document.broker.json
}

# ENIs in the subnets: AWS's own minimal policy for VPC functions.
resource "aws_iam_role_policy_attachment" "vpc" {
  count = var.create_role && length(var.subnet_ids) > 0 ? 1 : 0

  role       = aws_iam_role.broker[0].name
  policy_arn = "arn:${local.partition}:iam::aws:policy/service-role/AWSLambdaVPCAccessExecutionRole"
}

# ------------------------------------------------------------------------------------------
# Function, logs and schedule
# ------------------------------------------------------------------------------------------

resource "aws_cloudwatch_log_group" "broker" {
  #checkov:skip=CKV_AWS_158:Optional (log_kms_key_arn): the broker never logs tokens, passwords or usernames (tested), so the logs need no customer-managed key by default.
  #checkov:skip=CKV_AWS_338:Retention is a variable (log_retention_days, default 30 days); a year of debug logs for an hourly job is cost without benefit.
  name              = "/aws/lambda/${var.name}"
  retention_in_days = var.log_retention_days
  kms_key_id        = var.log_kms_key_arn
  tags              = merge(var.tags, var.log_group_tags)
}

resource "aws_lambda_function" "broker" {
  #checkov:skip=CKV_AWS_116:No DLQ: a failed tick carries no data worth replaying (the next tick is the retry); failures raise the Errors and MinSecondsUntilExpiry alarms instead.
  #checkov:skip=CKV_AWS_117:Optional (subnet_ids): it only talks to the public iAdvize API and Secrets Manager; attach it to a VPC with NAT and a Secrets Manager endpoint if your policy requires it.
  #checkov:skip=CKV_AWS_173:The environment holds configuration only (secret names, durations), no secret.
  #checkov:skip=CKV_AWS_272:Code signing needs a signing profile this module does not own; the package is a release zip with a SHA256SUMS file.
  function_name = var.name
  description   = "Keeps valid iAdvize API access tokens in Secrets Manager."
  role          = local.role_arn

  filename          = local.package_file
  source_code_hash  = local.package_hash
  s3_bucket         = local.package_from_s3 ? var.s3_bucket : null
  s3_key            = local.package_from_s3 ? var.s3_key : null
  s3_object_version = local.package_from_s3 ? var.s3_object_version : null

  handler       = "bootstrap"
  runtime       = "provided.al2023"
  architectures = [var.architecture]
  memory_size   = var.memory_size
  # Covers the iAdvize retry budget (4 backoff retries, 10 s per request) with margin.
  timeout = var.timeout
  # No reservation unless asked for (null = the provider's -1, unreserved): an account whose
  # concurrency quota is 10 (new accounts) rejects any. Overlapping invocations are safe;
  # 1 makes them queue instead (infra/README.md "Reserved concurrency").
  reserved_concurrent_executions = var.reserved_concurrent_executions

  tracing_config {
    mode = "PassThrough"
  }

  logging_config {
    log_format            = "JSON"
    log_group             = aws_cloudwatch_log_group.broker.name
    application_log_level = var.application_log_level
    system_log_level      = "WARN"
  }

  dynamic "vpc_config" {
    for_each = length(var.subnet_ids) > 0 ? [1] : []
    content {
      subnet_ids         = var.subnet_ids
      security_group_ids = var.security_group_ids
    }
  }

  environment {
    variables = {
      # Only the built-in integration: the others are found by tag (the environment is
      # capped at 4 KB, a few dozen ARNs).
      IADVIZE_TOKEN_SECRET_IDS          = local.token_secret_name
      IADVIZE_CREDENTIALS_SECRET_ID     = local.credentials_secret_arn
      IADVIZE_API_URL                   = var.api_url
      IADVIZE_REFRESH_BEFORE_EXPIRY     = var.refresh_before_expiry
      IADVIZE_MIN_LOGIN_INTERVAL        = var.min_login_interval
      IADVIZE_STUCK_ROTATION_AFTER      = var.stuck_rotation_after
      IADVIZE_HTTP_TIMEOUT              = var.http_timeout
      IADVIZE_VERIFY_TOKEN              = tostring(var.verify_token)
      IADVIZE_MAX_CONCURRENCY           = tostring(var.max_concurrency)
      IADVIZE_REFUSED_CREDENTIALS_RETRY = var.refused_credentials_retry
      IADVIZE_MAX_LOGINS_PER_MINUTE     = tostring(var.max_logins_per_minute)
      IADVIZE_PER_SECRET_METRICS        = tostring(var.per_secret_metrics)
      IADVIZE_REPORT_VERIFY_INTERVAL    = var.report_verify_interval
      IADVIZE_MAX_FOLLOW_UPS            = tostring(var.max_follow_ups)
      IADVIZE_THROTTLE_PAUSE            = var.throttle_pause
    }
  }

  tags = merge(var.tags, var.function_tags)

  lifecycle {
    precondition {
      condition     = length(var.subnet_ids) == 0 || length(var.security_group_ids) > 0
      error_message = "subnet_ids needs security_group_ids (outbound 443 to iAdvize and Secrets Manager)."
    }
    precondition {
      condition     = var.create_role != (var.role_arn != null)
      error_message = "Set either create_role = true (the module creates the role) or create_role = false with role_arn (your own role)."
    }
    precondition {
      condition     = var.s3_bucket == null || var.s3_key != null
      error_message = "s3_bucket needs s3_key."
    }
  }

  # The role must be able to write logs before the first invocation.
  # The package is built first when it comes from source.
  depends_on = [aws_iam_role_policy.broker, aws_iam_role_policy_attachment.vpc, terraform_data.package_build]
}

# The next scheduled tick is the retry; the broker already retries iAdvize inside one
# invocation, and immediate Lambda retries would only spend more logins.
resource "aws_lambda_function_event_invoke_config" "broker" {
  function_name          = aws_lambda_function.broker.function_name
  maximum_retry_attempts = 0
}

# An EventBridge "Scheduled Event": the broker runs a refresh tick over its token secrets.
# create_schedule = false leaves the ticks to something else (another scheduler, tests); the
# token expiry alarm then pages unless something ticks at least every 2 hours.
resource "aws_cloudwatch_event_rule" "tick" {
  count = var.create_schedule ? 1 : 0

  name                = "${var.name}-tick"
  description         = "iadvize-token-broker refresh tick"
  schedule_expression = var.schedule_expression
  tags                = merge(var.tags, var.event_rule_tags)
}

resource "aws_cloudwatch_event_target" "tick" {
  count = var.create_schedule ? 1 : 0

  rule = aws_cloudwatch_event_rule.tick[0].name
  arn  = aws_lambda_function.broker.arn
}

resource "aws_lambda_permission" "tick" {
  count = var.create_schedule ? 1 : 0

  statement_id  = "AllowEventBridgeTick"
  action        = "lambda:InvokeFunction"
  function_name = aws_lambda_function.broker.function_name
  principal     = "events.amazonaws.com"
  source_arn    = aws_cloudwatch_event_rule.tick[0].arn
}

# ------------------------------------------------------------------------------------------
# Optional Secrets Manager native rotation (the built-in token secret and the integrations')
# ------------------------------------------------------------------------------------------

locals {
  rotated_token_arns = var.enable_native_rotation ? merge({ "" = aws_secretsmanager_secret.token.arn }, local.integration_token_arns) : {}
}

resource "aws_lambda_permission" "rotation" {
  for_each = local.rotated_token_arns

  statement_id  = each.key == "" ? "AllowSecretsManagerRotation" : "AllowSecretsManagerRotation-${each.key}"
  action        = "lambda:InvokeFunction"
  function_name = aws_lambda_function.broker.function_name
  principal     = "secretsmanager.amazonaws.com"
  # Only Secrets Manager rotating this secret, for this account (the confused-deputy guard
  # AWS documents for rotation functions).
  source_account = local.account_id
  source_arn     = each.value
}

resource "aws_secretsmanager_secret_rotation" "token" {
  for_each = local.rotated_token_arns

  secret_id           = each.value
  rotation_lambda_arn = aws_lambda_function.broker.arn
  # Do not rotate during the apply: the credentials are usually not there yet.
  rotate_immediately = false

  rotation_rules {
    schedule_expression = var.rotation_schedule_expression
  }

  depends_on = [aws_lambda_permission.rotation]
}

# ------------------------------------------------------------------------------------------
# Alarms
# ------------------------------------------------------------------------------------------

resource "aws_sns_topic" "alarms" {
  #checkov:skip=CKV_AWS_26:Alarm notifications carry no secret; CloudWatch cannot publish to a topic encrypted with the AWS-managed SNS key, and a CMK would need a key policy for cloudwatch.amazonaws.com that this module does not own.
  count = var.create_alarms && var.alarm_email != null ? 1 : 0

  name         = "${var.name}-alarms"
  display_name = "iadvize-token-broker alarms"
  tags         = merge(var.tags, var.alarm_tags)
}

resource "aws_sns_topic_subscription" "alarms" {
  count = var.create_alarms && var.alarm_email != null ? 1 : 0

  topic_arn = aws_sns_topic.alarms[0].arn
  protocol  = "email"
  endpoint  = var.alarm_email
}

# Any failed invocation: a failed tick returns an error after logging which secret failed.
resource "aws_cloudwatch_metric_alarm" "errors" {
  count = var.create_alarms ? 1 : 0

  alarm_name          = "${var.name}-errors"
  alarm_description   = "iadvize-token-broker invocations failed in the last hour. Read the function's logs (outcome/error per secret). See infra/README.md \"Alarms\"."
  namespace           = "AWS/Lambda"
  metric_name         = "Errors"
  dimensions          = { FunctionName = aws_lambda_function.broker.function_name }
  statistic           = "Sum"
  period              = 3600
  evaluation_periods  = 1
  threshold           = 1
  comparison_operator = "GreaterThanOrEqualToThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions
  tags                = merge(var.tags, var.alarm_tags)
}

# Fleet-wide: the least time left on any managed token (0 when one has no valid token).
# Two consecutive hourly periods must breach, so one late tick (an empty period, which
# counts as breaching) does not page; a broker that stopped pages within 2 h of its first
# missed tick. The 3 h threshold then means under ~2 h left when it fires.
resource "aws_cloudwatch_metric_alarm" "token_expiry" {
  count = var.create_alarms ? 1 : 0

  alarm_name          = "${var.name}-token-expiry"
  alarm_description   = "A token managed by iadvize-token-broker expires within about 2 hours, or the broker has not reported for 2 hours. Consumers will soon get 401s. See infra/README.md \"Alarms\"."
  namespace           = "IadvizeTokenBroker"
  metric_name         = "MinSecondsUntilExpiry"
  statistic           = "Minimum"
  period              = 3600
  evaluation_periods  = 2
  datapoints_to_alarm = 2
  threshold           = 10800
  comparison_operator = "LessThanThreshold"
  treat_missing_data  = "breaching"
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions
  tags                = merge(var.tags, var.alarm_tags)
}

# ------------------------------------------------------------------------------------------
# What consumers attach to read a token (here and in the replica regions)
# ------------------------------------------------------------------------------------------

data "aws_iam_policy_document" "consumer" {
  statement {
    sid       = "ReadToken"
    actions   = ["secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret"]
    resources = concat([aws_secretsmanager_secret.token.arn], local.token_replica_arns)
  }

  # Rejection reports go to the queue, never to the function: a consumer may read and
  # report, nothing else.
  statement {
    sid       = "ReportRejectedToken"
    actions   = ["sqs:SendMessage"]
    resources = [aws_sqs_queue.reports.arn]
  }

  dynamic "statement" {
    for_each = !local.has_kms_key && length(local.replica_kms_key_arns) == 0 ? [] : [1]
    content {
      sid       = "DecryptToken"
      actions   = ["kms:Decrypt"]
      resources = compact(concat([local.kms_key_arn], local.replica_kms_key_arns))
      condition {
        test     = "StringEquals"
        variable = "kms:ViaService"
        values   = [for r in concat([local.region], keys(var.replica_regions)) : "secretsmanager.${r}.amazonaws.com"]
      }
    }
  }
}

# The description stays as it was: IAM replaces a policy whose description changes, which
# would detach it from every consumer role.
resource "aws_iam_policy" "consumer" {
  name        = "${var.name}-read-token-${local.region}"
  description = "Read the iAdvize access token kept by iadvize-token-broker."
  policy      = data.aws_iam_policy_document.consumer.json
  tags        = merge(var.tags, var.iam_tags)
}

# One per integration: a consumer of integration A cannot read B's token.
data "aws_iam_policy_document" "integration_consumer" {
  for_each = var.integrations

  statement {
    sid     = "ReadToken"
    actions = ["secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret"]
    resources = concat([aws_secretsmanager_secret.integration_token[each.key].arn], [
      for r in keys(each.value.replica_regions) :
      replace(aws_secretsmanager_secret.integration_token[each.key].arn, ":secretsmanager:${local.region}:", ":secretsmanager:${r}:")
    ])
  }

  statement {
    sid       = "ReportRejectedToken"
    actions   = ["sqs:SendMessage"]
    resources = [aws_sqs_queue.reports.arn]
  }

  dynamic "statement" {
    for_each = each.value.kms_key_arn == null && length(compact(values(each.value.replica_regions))) == 0 ? [] : [1]
    content {
      sid       = "DecryptToken"
      actions   = ["kms:Decrypt"]
      resources = compact(concat([each.value.kms_key_arn], values(each.value.replica_regions)))
      condition {
        test     = "StringEquals"
        variable = "kms:ViaService"
        values   = [for r in concat([local.region], keys(each.value.replica_regions)) : "secretsmanager.${r}.amazonaws.com"]
      }
    }
  }
}

resource "aws_iam_policy" "integration_consumer" {
  for_each = var.integrations

  name        = "${var.name}-read-token-${each.key}-${local.region}"
  description = "Read the iAdvize access token of integration ${each.key} kept by iadvize-token-broker."
  policy      = data.aws_iam_policy_document.integration_consumer[each.key].json
  tags        = merge(var.tags, var.iam_tags)
}
