output "token_secret_arn" {
  description = "ARN of the token secret consumers read (AWSCURRENT)."
  value       = aws_secretsmanager_secret.token.arn
}

output "token_secret_name" {
  description = "Name of the token secret (also its SecretName dimension when per_secret_metrics is on)."
  value       = aws_secretsmanager_secret.token.name
}

output "token_replica_arns" {
  description = "ARNs of the token secret's read-only replicas, one per replica region."
  value       = local.token_replica_arns
}

output "credentials_secret_arn" {
  description = "ARN of the credentials secret: put {\"username\",\"password\"} here with `aws secretsmanager put-secret-value`."
  value       = local.credentials_secret_arn
}

output "credentials_secret_name" {
  description = "Name of the credentials secret."
  value = (
    local.create_credentials
    ? aws_secretsmanager_secret.credentials[0].name
    : regex("secret:(.+)-[A-Za-z0-9]{6}$", var.credentials_secret_arn)[0]
  )
}

output "function_name" {
  description = "Name of the broker function (invoke it with {\"action\":\"status\"})."
  value       = aws_lambda_function.broker.function_name
}

output "function_arn" {
  description = "ARN of the broker function."
  value       = aws_lambda_function.broker.arn
}

output "function_environment" {
  description = "The broker's configuration (Lambda environment), e.g. to run the same binary locally."
  value       = aws_lambda_function.broker.environment[0].variables
}

output "consumer_policy_arn" {
  description = "Managed policy to attach to consumer roles: read the token secret (and its replicas), send rejection reports to the report queue."
  value       = aws_iam_policy.consumer.arn
}

output "log_group_name" {
  description = "CloudWatch log group of the function."
  value       = aws_cloudwatch_log_group.broker.name
}

output "log_group_arn" {
  description = "ARN of the function's CloudWatch log group."
  value       = aws_cloudwatch_log_group.broker.arn
}

output "alarm_names" {
  description = "Names of the Errors and MinSecondsUntilExpiry alarms ([] with create_alarms = false)."
  value       = concat(aws_cloudwatch_metric_alarm.errors[*].alarm_name, aws_cloudwatch_metric_alarm.token_expiry[*].alarm_name)
}

output "alarm_arns" {
  description = "ARNs of the Errors and MinSecondsUntilExpiry alarms ([] with create_alarms = false)."
  value       = concat(aws_cloudwatch_metric_alarm.errors[*].arn, aws_cloudwatch_metric_alarm.token_expiry[*].arn)
}

output "alarm_topic_arn" {
  description = "SNS topic the alarms notify (null without alarm_email)."
  value       = one(aws_sns_topic.alarms[*].arn)
}

output "role_arn" {
  description = "ARN of the function's execution role (created, or role_arn)."
  value       = local.role_arn
}

output "role_name" {
  description = "Name of the function's execution role."
  value       = local.role_name
}

output "broker_policy_json" {
  description = "The policy the execution role needs: attach it to a role you bring (role_arn)."
  value       = data.aws_iam_policy_document.broker.json
}

output "schedule_rule_name" {
  description = "Name of the EventBridge rule that runs the refresh tick (null with create_schedule = false)."
  value       = one(aws_cloudwatch_event_rule.tick[*].name)
}

output "schedule_rule_arn" {
  description = "ARN of the EventBridge rule that runs the refresh tick (null with create_schedule = false)."
  value       = one(aws_cloudwatch_event_rule.tick[*].arn)
}

output "schedule_expression" {
  description = "Schedule of the refresh tick (null with create_schedule = false)."
  value       = one(aws_cloudwatch_event_rule.tick[*].schedule_expression)
}

output "report_queue_url" {
  description = "URL of the SQS FIFO queue consumers send rejection reports to: set it as IADVIZE_REPORT_QUEUE_URL in every consumer."
  value       = aws_sqs_queue.reports.url
}

output "report_queue_arn" {
  description = "ARN of the report queue (the consumer policies grant sqs:SendMessage on it)."
  value       = aws_sqs_queue.reports.arn
}

output "credentials_rule_arns" {
  description = "EventBridge rules that run the broker when a secret's AWSCURRENT moves: changed (Secret Label Updated) and api-calls (CloudTrail), those created."
  value       = { for k, r in aws_cloudwatch_event_rule.credentials : k => r.arn }
}

output "dashboard_name" {
  description = "Name of the CloudWatch dashboard (null with create_dashboard = false)."
  value       = one(aws_cloudwatch_dashboard.broker[*].dashboard_name)
}

output "kms_key_arn" {
  description = "Customer-managed key of the built-in integration's secrets: the module's (create_kms_key), kms_key_arn, or null for aws/secretsmanager."
  value       = local.kms_key_arn
}

output "cross_account_key_policy_json" {
  description = "With cross_account_readers and your own kms_key_arn: the key policy statement to add to that key, so the readers can decrypt the token through Secrets Manager (the module writes it itself with create_kms_key). null without cross_account_readers."
  value = length(var.cross_account_readers) == 0 ? null : jsonencode({
    Sid       = "CrossAccountReadersDecryptViaSecretsManager"
    Effect    = "Allow"
    Principal = { AWS = var.cross_account_readers }
    Action    = ["kms:Decrypt", "kms:DescribeKey"]
    Resource  = "*"
    Condition = { StringEquals = { "kms:ViaService" = "secretsmanager.${local.region}.amazonaws.com" } }
  })
}

output "integrations" {
  description = "Per integration: token_secret_arn, token_secret_name, credentials_secret_arn (put {\"username\",\"password\"} there) and consumer_policy_arn."
  value = {
    for k in keys(var.integrations) : k => {
      token_secret_arn       = aws_secretsmanager_secret.integration_token[k].arn
      token_secret_name      = aws_secretsmanager_secret.integration_token[k].name
      credentials_secret_arn = aws_secretsmanager_secret.integration_credentials[k].arn
      consumer_policy_arn    = aws_iam_policy.integration_consumer[k].arn
    }
  }
}
