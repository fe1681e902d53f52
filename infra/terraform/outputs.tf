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
  description = "Managed policy to attach to consumer roles: read the token secret (and its replicas)."
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
  description = "Names of the Errors and MinSecondsUntilExpiry alarms."
  value       = [aws_cloudwatch_metric_alarm.errors.alarm_name, aws_cloudwatch_metric_alarm.token_expiry.alarm_name]
}

output "alarm_arns" {
  description = "ARNs of the Errors and MinSecondsUntilExpiry alarms."
  value       = [aws_cloudwatch_metric_alarm.errors.arn, aws_cloudwatch_metric_alarm.token_expiry.arn]
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
  description = "Name of the EventBridge rule that runs the refresh tick."
  value       = aws_cloudwatch_event_rule.tick.name
}

output "schedule_rule_arn" {
  description = "ARN of the EventBridge rule that runs the refresh tick."
  value       = aws_cloudwatch_event_rule.tick.arn
}

output "schedule_expression" {
  description = "Schedule of the refresh tick."
  value       = aws_cloudwatch_event_rule.tick.schedule_expression
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
