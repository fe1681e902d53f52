# iadvize-token-broker: a Lambda that keeps one valid iAdvize API access token in a Secrets
# Manager secret that every consumer reads. Same features as infra/sam/template.yaml, plus
# replication of the token secret to other regions.

data "aws_partition" "current" {}
data "aws_region" "current" {}
data "aws_caller_identity" "current" {}

locals {
  region     = data.aws_region.current.id
  account_id = data.aws_caller_identity.current.account_id

  lambda_zip = coalesce(var.lambda_zip_path, "${path.module}/../../target/lambda/iadvize-token-broker/bootstrap.zip")

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

  # The broker's state tags (DESIGN section 3): written by the function, never by Terraform.
  state_tag_keys = ["iadvize:last-login-attempt", "iadvize:rejected-credentials-version"]
}

# ------------------------------------------------------------------------------------------
# Secrets
# ------------------------------------------------------------------------------------------

# The output every consumer reads. No aws_secretsmanager_secret_version on purpose: a
# placeholder value would be read by consumers as a token. The first tick finds no
# AWSCURRENT, treats the secret as due and writes the first record.
resource "aws_secretsmanager_secret" "token" {
  name                    = local.token_secret_name
  description             = "iAdvize API access token maintained by iadvize-token-broker. AWSCURRENT is JSON: access_token, token_type, issued_at, expires_at, expires_in. Read-only for consumers."
  kms_key_id              = var.kms_key_arn
  recovery_window_in_days = var.recovery_window_in_days

  dynamic "replica" {
    for_each = var.replica_regions
    content {
      region     = replica.key
      kms_key_id = replica.value
    }
  }

  tags = merge(var.tags, {
    # Which credentials this token is made from (DESIGN section 3).
    "iadvize:credentials-secret-id" = local.credentials_secret_arn
  })

  lifecycle {
    # The broker keeps its state in these tags; Terraform must not remove them.
    ignore_changes = [
      tags["iadvize:last-login-attempt"],
      tags["iadvize:rejected-credentials-version"],
      tags_all["iadvize:last-login-attempt"],
      tags_all["iadvize:rejected-credentials-version"],
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
  kms_key_id              = var.kms_key_arn
  recovery_window_in_days = var.recovery_window_in_days
  tags                    = var.tags
}

# ------------------------------------------------------------------------------------------
# Function role: exactly the Secrets Manager calls src/store.rs makes, on exactly these
# secrets (tests/infra_drift.rs checks the action list against the code).
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
  statement {
    sid = "TokenSecretReadWrite"
    actions = [
      "secretsmanager:DescribeSecret",
      "secretsmanager:GetSecretValue",
      "secretsmanager:PutSecretValue",
      "secretsmanager:UpdateSecretVersionStage",
      "secretsmanager:ListSecretVersionIds",
    ]
    resources = [aws_secretsmanager_secret.token.arn]
  }

  # Broker state lives in two tags; it may set or remove only those.
  statement {
    sid = "TokenSecretStateTags"
    actions = [
      "secretsmanager:TagResource",
      "secretsmanager:UntagResource",
    ]
    resources = [aws_secretsmanager_secret.token.arn]
    condition {
      test     = "ForAllValues:StringEquals"
      variable = "aws:TagKeys"
      values   = local.state_tag_keys
    }
  }

  statement {
    sid       = "CredentialsRead"
    actions   = ["secretsmanager:GetSecretValue"]
    resources = [local.credentials_secret_arn]
  }

  statement {
    sid       = "Logs"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = ["${aws_cloudwatch_log_group.broker.arn}:*"]
  }

  dynamic "statement" {
    for_each = var.kms_key_arn == null ? [] : [var.kms_key_arn]
    content {
      sid       = "SecretsKmsKey"
      actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
      resources = [statement.value]
      condition {
        test     = "StringEquals"
        variable = "kms:ViaService"
        values   = ["secretsmanager.${local.region}.amazonaws.com"]
      }
    }
  }
}

resource "aws_iam_role" "broker" {
  name               = "${var.name}-${local.region}"
  description        = "Execution role of iadvize-token-broker (least privilege)."
  assume_role_policy = data.aws_iam_policy_document.assume.json
  tags               = var.tags
}

resource "aws_iam_role_policy" "broker" {
  name   = "broker"
  role   = aws_iam_role.broker.id
  policy = data.aws_iam_policy_document.broker.json
}

# ------------------------------------------------------------------------------------------
# Function, logs and schedule
# ------------------------------------------------------------------------------------------

resource "aws_cloudwatch_log_group" "broker" {
  #checkov:skip=CKV_AWS_158:The broker never logs tokens, passwords or usernames (DESIGN section 9, tested); the logs need no customer-managed key.
  #checkov:skip=CKV_AWS_338:Retention is a variable (log_retention_days, default 30 days); a year of debug logs for an hourly job is cost without benefit.
  name              = "/aws/lambda/${var.name}"
  retention_in_days = var.log_retention_days
  tags              = var.tags
}

resource "aws_lambda_function" "broker" {
  #checkov:skip=CKV_AWS_115:No reserved concurrency: it fails on accounts at the default low concurrency limit, and the iAdvize rate limit is protected by the per-secret login spacing tag, not by Lambda concurrency.
  #checkov:skip=CKV_AWS_116:No DLQ: a failed tick carries no data worth replaying (the next tick is the retry); failures raise the Errors and SecondsUntilExpiry alarms instead.
  #checkov:skip=CKV_AWS_117:Runs outside a VPC: it only talks to the public iAdvize API and Secrets Manager; wrap it in a VPC with NAT or endpoints if your policy requires it.
  #checkov:skip=CKV_AWS_173:The environment holds configuration only (secret names, durations), no secret.
  #checkov:skip=CKV_AWS_272:Code signing needs a signing profile this module does not own; the package is built from this repository by `make package`.
  function_name    = var.name
  description      = "Keeps one valid iAdvize API access token in Secrets Manager."
  role             = aws_iam_role.broker.arn
  filename         = local.lambda_zip
  source_code_hash = filebase64sha256(local.lambda_zip)
  handler          = "bootstrap"
  runtime          = "provided.al2023"
  architectures    = [var.architecture]
  memory_size      = var.memory_size
  # Covers the iAdvize retry budget (4 backoff retries, 10 s per request) with margin.
  timeout = var.timeout

  tracing_config {
    mode = "PassThrough"
  }

  logging_config {
    log_format = "JSON"
    log_group  = aws_cloudwatch_log_group.broker.name
  }

  environment {
    variables = {
      IADVIZE_TOKEN_SECRET_IDS      = local.token_secret_name
      IADVIZE_CREDENTIALS_SECRET_ID = local.credentials_secret_arn
      IADVIZE_API_URL               = var.api_url
      IADVIZE_REFRESH_BEFORE_EXPIRY = var.refresh_before_expiry
      IADVIZE_MIN_LOGIN_INTERVAL    = var.min_login_interval
      IADVIZE_STUCK_ROTATION_AFTER  = var.stuck_rotation_after
      IADVIZE_HTTP_TIMEOUT          = var.http_timeout
      IADVIZE_VERIFY_TOKEN          = tostring(var.verify_token)
      IADVIZE_MAX_CONCURRENCY       = tostring(var.max_concurrency)
    }
  }

  tags = var.tags

  # The role must be able to write logs before the first invocation.
  depends_on = [aws_iam_role_policy.broker]
}

# The next scheduled tick is the retry; the broker already retries iAdvize inside one
# invocation, and immediate Lambda retries would only spend more logins.
resource "aws_lambda_function_event_invoke_config" "broker" {
  function_name          = aws_lambda_function.broker.function_name
  maximum_retry_attempts = 0
}

# An EventBridge "Scheduled Event": the broker runs a refresh tick over IADVIZE_TOKEN_SECRET_IDS.
resource "aws_cloudwatch_event_rule" "tick" {
  name                = "${var.name}-tick"
  description         = "iadvize-token-broker refresh tick"
  schedule_expression = var.schedule_expression
  tags                = var.tags
}

resource "aws_cloudwatch_event_target" "tick" {
  rule = aws_cloudwatch_event_rule.tick.name
  arn  = aws_lambda_function.broker.arn
}

resource "aws_lambda_permission" "tick" {
  statement_id  = "AllowEventBridgeTick"
  action        = "lambda:InvokeFunction"
  function_name = aws_lambda_function.broker.function_name
  principal     = "events.amazonaws.com"
  source_arn    = aws_cloudwatch_event_rule.tick.arn
}

# ------------------------------------------------------------------------------------------
# Optional Secrets Manager native rotation
# ------------------------------------------------------------------------------------------

resource "aws_lambda_permission" "rotation" {
  count = var.enable_native_rotation ? 1 : 0

  statement_id  = "AllowSecretsManagerRotation"
  action        = "lambda:InvokeFunction"
  function_name = aws_lambda_function.broker.function_name
  principal     = "secretsmanager.amazonaws.com"
  # Only Secrets Manager acting for this account may invoke it (the confused-deputy guard
  # AWS documents for rotation functions).
  source_account = local.account_id
}

resource "aws_secretsmanager_secret_rotation" "token" {
  count = var.enable_native_rotation ? 1 : 0

  secret_id           = aws_secretsmanager_secret.token.id
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
  count = var.alarm_email == null ? 0 : 1

  name         = "${var.name}-alarms"
  display_name = "iadvize-token-broker alarms"
  tags         = var.tags
}

resource "aws_sns_topic_subscription" "alarms" {
  count = var.alarm_email == null ? 0 : 1

  topic_arn = aws_sns_topic.alarms[0].arn
  protocol  = "email"
  endpoint  = var.alarm_email
}

# Any failed invocation: a failed tick returns an error after logging which secret failed.
resource "aws_cloudwatch_metric_alarm" "errors" {
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
  alarm_actions       = aws_sns_topic.alarms[*].arn
  ok_actions          = aws_sns_topic.alarms[*].arn
  tags                = var.tags
}

# The token consumers read expires in less than 2 h, or the broker stopped reporting
# (missing data is breaching): consumers are about to fail.
resource "aws_cloudwatch_metric_alarm" "token_expiry" {
  alarm_name          = "${var.name}-token-expiry"
  alarm_description   = "The iAdvize token in ${local.token_secret_name} expires within 2 hours, or the broker has not reported for an hour. Consumers will soon get 401s. See infra/README.md \"Alarms\"."
  namespace           = "IadvizeTokenBroker"
  metric_name         = "SecondsUntilExpiry"
  dimensions          = { SecretName = local.token_secret_name }
  statistic           = "Minimum"
  period              = 3600
  evaluation_periods  = 1
  threshold           = 7200
  comparison_operator = "LessThanThreshold"
  treat_missing_data  = "breaching"
  alarm_actions       = aws_sns_topic.alarms[*].arn
  ok_actions          = aws_sns_topic.alarms[*].arn
  tags                = var.tags
}

# ------------------------------------------------------------------------------------------
# What consumers attach to read the token (here and in the replica regions)
# ------------------------------------------------------------------------------------------

data "aws_iam_policy_document" "consumer" {
  statement {
    sid       = "ReadToken"
    actions   = ["secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret"]
    resources = concat([aws_secretsmanager_secret.token.arn], local.token_replica_arns)
  }

  dynamic "statement" {
    for_each = var.kms_key_arn == null && length(local.replica_kms_key_arns) == 0 ? [] : [1]
    content {
      sid       = "DecryptToken"
      actions   = ["kms:Decrypt"]
      resources = compact(concat([var.kms_key_arn], local.replica_kms_key_arns))
      condition {
        test     = "StringEquals"
        variable = "kms:ViaService"
        values   = [for r in concat([local.region], keys(var.replica_regions)) : "secretsmanager.${r}.amazonaws.com"]
      }
    }
  }
}

resource "aws_iam_policy" "consumer" {
  name        = "${var.name}-read-token-${local.region}"
  description = "Read the iAdvize access token kept by iadvize-token-broker."
  policy      = data.aws_iam_policy_document.consumer.json
  tags        = var.tags
}
