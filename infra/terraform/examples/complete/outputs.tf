output "token_secret_name" {
  description = "Name of the built-in integration's token secret."
  value       = module.broker.token_secret_name
}

output "token_secret_arn" {
  description = "ARN of the built-in integration's token secret."
  value       = module.broker.token_secret_arn
}

output "token_replica_arns" {
  description = "Replicas of the token secret."
  value       = module.broker.token_replica_arns
}

output "credentials_secret_arn" {
  description = "Credentials secret of the built-in integration."
  value       = module.broker.credentials_secret_arn
}

output "integrations" {
  description = "Per integration: token and credentials secrets, consumer policy."
  value       = module.broker.integrations
}

output "function_name" {
  description = "Name of the broker function."
  value       = module.broker.function_name
}

output "function_environment" {
  description = "The broker's Lambda environment."
  value       = module.broker.function_environment
}

output "role_arn" {
  description = "Execution role of the function."
  value       = module.broker.role_arn
}

output "role_name" {
  description = "Name of the execution role."
  value       = module.broker.role_name
}

output "log_group_arn" {
  description = "Log group of the function."
  value       = module.broker.log_group_arn
}

output "schedule_rule_arn" {
  description = "EventBridge rule of the refresh tick."
  value       = module.broker.schedule_rule_arn
}

output "alarm_arns" {
  description = "The Errors and MinSecondsUntilExpiry alarms."
  value       = module.broker.alarm_arns
}

output "alarm_topic_arn" {
  description = "The e-mail alarm topic."
  value       = module.broker.alarm_topic_arn
}

output "consumer_policy_arn" {
  description = "Consumer policy of the built-in integration."
  value       = module.broker.consumer_policy_arn
}

output "report_queue_url" {
  description = "The queue consumers report rejected tokens to (their IADVIZE_REPORT_QUEUE_URL)."
  value       = module.broker.report_queue_url
}

output "report_queue_arn" {
  description = "ARN of the report queue."
  value       = module.broker.report_queue_arn
}

output "credentials_rule_arns" {
  description = "The credentials-changed rules."
  value       = module.broker.credentials_rule_arns
}

output "dashboard_name" {
  description = "The CloudWatch dashboard."
  value       = module.broker.dashboard_name
}

output "kms_key_arn" {
  description = "Key of the built-in integration's secrets."
  value       = module.broker.kms_key_arn
}
