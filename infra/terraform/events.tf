# ------------------------------------------------------------------------------------------
# Credentials changed: new credentials are used within a minute instead of at the next tick.
# EventBridge cannot filter on tags, so the rules see every matching secret of the account
# (within fleet_name_prefix when set, plus the credentials secrets this module knows by ARN);
# an event for a secret that is not a credentials secret costs the broker one DescribeSecret.
# ------------------------------------------------------------------------------------------

locals {
  # With a prefix: only secrets under it, and the credentials secrets named here.
  scope_secret_arns        = concat([{ prefix = local.fleet_secret_arns_prefix }], local.listed_credentials_arns)
  fleet_secret_arns_prefix = "arn:${local.partition}:secretsmanager:${local.region}:${local.account_id}:secret:${var.fleet_name_prefix}"

  # Secrets Manager's native event, sent whenever a staging label other than AWSPENDING and
  # AWSPREVIOUS moves; no CloudTrail trail needed
  # (https://docs.aws.amazon.com/secretsmanager/latest/userguide/event-detail-secret-label-updated-secretsmanager.html).
  secret_label_updated_pattern = merge(
    {
      source        = ["aws.secretsmanager"]
      "detail-type" = ["Secret Label Updated"]
      detail        = { labelUpdated = ["AWSCURRENT"] }
    },
    { for k, v in { resources = local.scope_secret_arns } : k => v if var.fleet_name_prefix != "" },
  )

  # The same writes as CloudTrail records them: needs a trail that logs management events
  # (infra/README.md). secretId is a name or an ARN, as the caller wrote it.
  cloudtrail_pattern = {
    source        = ["aws.secretsmanager"]
    "detail-type" = ["AWS API Call via CloudTrail"]
    detail = merge(
      {
        eventSource = ["secretsmanager.amazonaws.com"]
        eventName   = ["PutSecretValue", "UpdateSecret", "UpdateSecretVersionStage"]
        # Calls that failed changed nothing.
        errorCode = [{ exists = false }]
      },
      {
        for k, v in {
          requestParameters = {
            secretId = concat(
              [{ prefix = var.fleet_name_prefix }, { prefix = local.fleet_secret_arns_prefix }],
              local.listed_credentials_arns,
            )
          }
        } : k => v if var.fleet_name_prefix != ""
      },
    )
  }

  # Rule key => event pattern (JSON): "changed" on by default, "api-calls" optional.
  credentials_rules = { for k, v in { changed = jsonencode(local.secret_label_updated_pattern), api-calls = jsonencode(local.cloudtrail_pattern) } : k => v if(k == "changed" ? var.create_credentials_changed_rule : var.create_cloudtrail_credentials_rule) }
}

resource "aws_cloudwatch_event_rule" "credentials" {
  for_each = local.credentials_rules

  name          = "${var.name}-credentials-${each.key}"
  description   = "iadvize-token-broker: a secret's AWSCURRENT moved (${each.key == "changed" ? "Secrets Manager's Secret Label Updated event" : "CloudTrail"}); refresh the tokens made from it if it is a credentials secret"
  event_pattern = each.value
  tags          = merge(var.tags, var.event_rule_tags)
}

resource "aws_cloudwatch_event_target" "credentials" {
  for_each = local.credentials_rules

  rule = aws_cloudwatch_event_rule.credentials[each.key].name
  arn  = aws_lambda_function.broker.arn
}

resource "aws_lambda_permission" "credentials" {
  for_each = local.credentials_rules

  statement_id  = "AllowEventBridgeCredentials-${each.key}"
  action        = "lambda:InvokeFunction"
  function_name = aws_lambda_function.broker.function_name
  principal     = "events.amazonaws.com"
  source_arn    = aws_cloudwatch_event_rule.credentials[each.key].arn
}
