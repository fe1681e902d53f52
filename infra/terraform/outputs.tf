output "token_secret_arn" {
  description = "ARN of the token secret consumers read (AWSCURRENT)."
  value       = aws_secretsmanager_secret.token.arn
}

output "token_secret_name" {
  description = "Name of the token secret (also the SecretName dimension of the SecondsUntilExpiry metric)."
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

output "alarm_names" {
  description = "Names of the Errors and SecondsUntilExpiry alarms."
  value       = [aws_cloudwatch_metric_alarm.errors.alarm_name, aws_cloudwatch_metric_alarm.token_expiry.alarm_name]
}

output "alarm_topic_arn" {
  description = "SNS topic the alarms notify (null without alarm_email)."
  value       = one(aws_sns_topic.alarms[*].arn)
}
