variable "region" {
  description = "AWS region to deploy to."
  type        = string
  default     = "us-east-1"
}

variable "name" {
  description = "Name prefix of the broker's resources and secrets (1-40 characters)."
  type        = string
  default     = "iadvize-token-broker"

  validation {
    condition     = can(regex("^[A-Za-z0-9_-]{1,40}$", var.name))
    error_message = "name must be 1-40 characters of letters, digits, '-' or '_' (the module's limit, so that every name built from it fits)."
  }
}

variable "reserved_concurrent_executions" {
  description = "Concurrent executions reserved for the function (null = none; 1 = one invocation at a time, needs an account concurrency quota above 10)."
  type        = number
  default     = null
}

variable "package_s3_bucket" {
  description = "Bucket holding the release zip."
  type        = string
}

variable "package_s3_key" {
  description = "Key of the release zip, e.g. iadvize-token-broker/iadvize-token-broker-0.1.0-arm64.zip."
  type        = string
}

variable "package_s3_object_version" {
  description = "Version of the release zip object (versioned bucket)."
  type        = string
  default     = null
}

variable "architecture" {
  description = "Architecture of the release zip: x86_64 or arm64."
  type        = string
  default     = "arm64"
}

variable "credentials_secret_arn" {
  description = "An existing credentials secret for the built-in integration (null = create one)."
  type        = string
  default     = null
}

variable "kms_key_arn" {
  description = "Customer-managed KMS key of the secrets."
  type        = string
  default     = null
}

variable "create_kms_key" {
  description = "Let the module create the secrets' KMS key (with the key policy cross-account readers need) instead of using kms_key_arn."
  type        = bool
  default     = true
}

variable "cross_account_readers" {
  description = "Account IDs or IAM role ARNs of other accounts that read the token and report."
  type        = list(string)
  default     = []
}

variable "replica_regions" {
  description = "Read-only replicas of the token secret: region => KMS key ARN or null."
  type        = map(string)
  default     = {}
}

variable "fleet_kms_key_arns" {
  description = "KMS keys of secrets onboarded by tag outside Terraform."
  type        = list(string)
  default     = []
}

variable "recovery_window_in_days" {
  description = "Recovery window of the secrets on destroy (0 = delete at once, e.g. in tests)."
  type        = number
  default     = 30
}

variable "log_kms_key_arn" {
  description = "KMS key of the log group."
  type        = string
  default     = null
}

variable "alarm_email" {
  description = "E-mail address notified by the alarms (null = none)."
  type        = string
  default     = null
}

variable "alarm_topic_arns" {
  description = "Existing SNS topics the alarms notify (PagerDuty, Chatbot)."
  type        = list(string)
  default     = []
}

variable "bring_your_own_role" {
  description = "Create the execution role here (as a platform team would) instead of in the module."
  type        = bool
  default     = false
}

variable "role_path" {
  description = "Path of the execution role."
  type        = string
  default     = "/service-roles/"
}

variable "permissions_boundary_arn" {
  description = "Permissions boundary of the execution role."
  type        = string
  default     = null
}

variable "subnet_ids" {
  description = "Private subnets of the function (NAT to reach iAdvize, Secrets Manager endpoint)."
  type        = list(string)
  default     = []
}

variable "security_group_ids" {
  description = "Security groups of the function (outbound 443)."
  type        = list(string)
  default     = []
}

variable "api_url" {
  description = "iAdvize API base URL."
  type        = string
  default     = "https://api.iadvize.com"
}

variable "enable_native_rotation" {
  description = "Add Secrets Manager rotation of the token secrets."
  type        = bool
  default     = true
}

# Local testing only: point the provider at a stand-in such as moto's server.
variable "aws_endpoint_url" {
  description = "Send every AWS call to this endpoint (e.g. http://127.0.0.1:5000 for moto). null = real AWS."
  type        = string
  default     = null
}
