output "token_secret_name" {
  description = "Name of the token secret consumers read."
  value       = module.broker.token_secret_name
}

output "token_secret_arn" {
  description = "ARN of the token secret consumers read."
  value       = module.broker.token_secret_arn
}

output "credentials_secret_name" {
  description = "Name of the credentials secret."
  value       = module.broker.credentials_secret_name
}

output "credentials_secret_arn" {
  description = "ARN of the credentials secret: put {\"username\",\"password\"} here."
  value       = module.broker.credentials_secret_arn
}

output "function_name" {
  description = "Name of the broker function."
  value       = module.broker.function_name
}

output "function_environment" {
  description = "The broker's Lambda environment."
  value       = module.broker.function_environment
}

output "consumer_policy_arn" {
  description = "Managed policy consumers attach to read the token."
  value       = module.broker.consumer_policy_arn
}

output "report_queue_url" {
  description = "The queue consumers report rejected tokens to (their IADVIZE_REPORT_QUEUE_URL)."
  value       = module.broker.report_queue_url
}

output "dashboard_name" {
  description = "The CloudWatch dashboard."
  value       = module.broker.dashboard_name
}

output "role_arn" {
  description = "Execution role of the function."
  value       = module.broker.role_arn
}
