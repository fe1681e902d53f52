# ------------------------------------------------------------------------------------------
# Naming and code
# ------------------------------------------------------------------------------------------

variable "name" {
  description = "Name prefix of every resource (function, role, log group, alarms, policy)."
  type        = string
  default     = "iadvize-token-broker"

  validation {
    condition     = can(regex("^[A-Za-z0-9_-]{1,40}$", var.name))
    error_message = "name must be 1-40 characters of letters, digits, '-' or '_' (it prefixes Lambda and IAM names)."
  }
}

variable "lambda_zip_path" {
  description = "Path of the Lambda package (`make package` writes target/lambda/iadvize-token-broker/bootstrap.zip). null = that file, relative to this module inside the repository."
  type        = string
  default     = null

  validation {
    condition     = var.lambda_zip_path == null || can(regex("\\.zip$", var.lambda_zip_path))
    error_message = "lambda_zip_path must name a .zip file containing the `bootstrap` binary."
  }
}

variable "architecture" {
  description = "CPU architecture the package was built for: x86_64 or arm64 (must match the zip)."
  type        = string
  default     = "x86_64"

  validation {
    condition     = contains(["x86_64", "arm64"], var.architecture)
    error_message = "architecture must be \"x86_64\" or \"arm64\"."
  }
}

variable "memory_size" {
  description = "Memory of the function in MB."
  type        = number
  default     = 128

  validation {
    condition     = var.memory_size >= 128 && var.memory_size <= 10240
    error_message = "memory_size must be between 128 and 10240 MB."
  }
}

variable "timeout" {
  description = "Function timeout in seconds; must cover the iAdvize retry budget (4 backoff retries at up to 10 s per request)."
  type        = number
  default     = 120

  validation {
    condition     = var.timeout >= 60 && var.timeout <= 900
    error_message = "timeout must be between 60 and 900 seconds."
  }
}

variable "schedule_expression" {
  description = "EventBridge schedule of the refresh tick. With the default 4h refresh window an hourly tick leaves 3-4 retries before a token expires."
  type        = string
  default     = "rate(1 hour)"

  validation {
    condition     = can(regex("^(rate|cron)\\(.+\\)$", var.schedule_expression))
    error_message = "schedule_expression must be rate(...) or cron(...)."
  }
}

variable "log_retention_days" {
  description = "Retention of the function's CloudWatch log group, in days."
  type        = number
  default     = 30

  validation {
    condition     = contains([1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653], var.log_retention_days)
    error_message = "log_retention_days must be one of the values CloudWatch Logs accepts (1, 3, 5, 7, 14, 30, 60, 90, ... 3653)."
  }
}

variable "tags" {
  description = "Tags added to every resource that supports them."
  type        = map(string)
  default     = {}
}

# ------------------------------------------------------------------------------------------
# Secrets
# ------------------------------------------------------------------------------------------

variable "token_secret_name" {
  description = "Name of the token secret consumers read. null = \"<name>/token\"."
  type        = string
  default     = null

  validation {
    condition     = var.token_secret_name == null || can(regex("^[A-Za-z0-9/_+=.@-]{1,512}$", var.token_secret_name))
    error_message = "token_secret_name may contain only letters, digits and /_+=.@- (at most 512 characters)."
  }
}

variable "credentials_secret_arn" {
  description = "Full ARN of an existing secret holding {\"username\",\"password\"}. null = create an empty secret; put its value with `aws secretsmanager put-secret-value` (never through a Terraform variable)."
  type        = string
  default     = null

  validation {
    condition     = var.credentials_secret_arn == null || can(regex("^arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:[0-9]{12}:secret:.+$", var.credentials_secret_arn))
    error_message = "credentials_secret_arn must be a full Secrets Manager secret ARN."
  }
}

variable "kms_key_arn" {
  description = "ARN of a customer-managed KMS key that encrypts the secrets. null = the AWS-managed key aws/secretsmanager (no KMS permission is then granted or needed)."
  type        = string
  default     = null

  validation {
    condition     = var.kms_key_arn == null || can(regex("^arn:aws[a-z-]*:kms:[a-z0-9-]+:[0-9]{12}:key/.+$", var.kms_key_arn))
    error_message = "kms_key_arn must be a KMS key ARN (arn:aws:kms:REGION:ACCOUNT:key/ID)."
  }
}

variable "replica_regions" {
  description = "Regions to replicate the token secret to, for consumers there (read-only replicas; the broker writes the primary). Map of region => KMS key ARN in that region, or null for the AWS-managed key."
  type        = map(string)
  default     = {}

  validation {
    condition     = alltrue([for r in keys(var.replica_regions) : can(regex("^[a-z]{2}(-[a-z]+)+-[0-9]$", r))])
    error_message = "replica_regions keys must be AWS region names such as eu-west-3."
  }

  validation {
    condition     = alltrue([for k in values(var.replica_regions) : k == null || can(regex("^arn:aws[a-z-]*:kms:", k))])
    error_message = "replica_regions values must be KMS key ARNs or null."
  }
}

variable "recovery_window_in_days" {
  description = "Recovery window of the created secrets when destroyed: 0 (delete at once) or 7-30 days."
  type        = number
  default     = 7

  validation {
    condition     = var.recovery_window_in_days == 0 || (var.recovery_window_in_days >= 7 && var.recovery_window_in_days <= 30)
    error_message = "recovery_window_in_days must be 0 or between 7 and 30."
  }
}

# ------------------------------------------------------------------------------------------
# Broker configuration (DESIGN section 8); durations are written like 90s, 15m, 4h.
# ------------------------------------------------------------------------------------------

variable "api_url" {
  description = "iAdvize API base URL (IADVIZE_API_URL)."
  type        = string
  default     = "https://api.iadvize.com"

  validation {
    condition     = can(regex("^https://[^/]+", var.api_url))
    error_message = "api_url must be an https URL."
  }
}

variable "refresh_before_expiry" {
  description = "Refresh the token when less than this remains (IADVIZE_REFRESH_BEFORE_EXPIRY)."
  type        = string
  default     = "4h"

  validation {
    condition     = can(regex("^[0-9]+(ms|s|m|h|d)$", var.refresh_before_expiry))
    error_message = "refresh_before_expiry must be a duration such as 4h."
  }
}

variable "min_login_interval" {
  description = "Minimum spacing between two login attempts per token secret (IADVIZE_MIN_LOGIN_INTERVAL)."
  type        = string
  default     = "10s"

  validation {
    condition     = can(regex("^[0-9]+(ms|s|m|h|d)$", var.min_login_interval))
    error_message = "min_login_interval must be a duration such as 10s."
  }
}

variable "stuck_rotation_after" {
  description = "Age after which the tick resumes an unfinished rotation (IADVIZE_STUCK_ROTATION_AFTER)."
  type        = string
  default     = "15m"

  validation {
    condition     = can(regex("^[0-9]+(ms|s|m|h|d)$", var.stuck_rotation_after))
    error_message = "stuck_rotation_after must be a duration such as 15m."
  }
}

variable "http_timeout" {
  description = "Timeout of one HTTP request to iAdvize (IADVIZE_HTTP_TIMEOUT)."
  type        = string
  default     = "10s"

  validation {
    condition     = can(regex("^[0-9]+(ms|s|m|h|d)$", var.http_timeout))
    error_message = "http_timeout must be a duration such as 10s."
  }
}

variable "verify_token" {
  description = "Call /_authenticated to verify a new token before publishing it (IADVIZE_VERIFY_TOKEN)."
  type        = bool
  default     = true
}

variable "max_concurrency" {
  description = "How many token secrets one tick refreshes at the same time (IADVIZE_MAX_CONCURRENCY)."
  type        = number
  default     = 4

  validation {
    condition     = var.max_concurrency >= 1 && var.max_concurrency <= 32 && floor(var.max_concurrency) == var.max_concurrency
    error_message = "max_concurrency must be an integer between 1 and 32."
  }
}

# ------------------------------------------------------------------------------------------
# Alarms and rotation
# ------------------------------------------------------------------------------------------

variable "alarm_email" {
  description = "E-mail address the alarms notify through a new SNS topic. null = no notification."
  type        = string
  default     = null

  validation {
    condition     = var.alarm_email == null || can(regex("^[^@\\s]+@[^@\\s]+$", var.alarm_email))
    error_message = "alarm_email must be an e-mail address or null."
  }
}

variable "enable_native_rotation" {
  description = "Also let Secrets Manager rotation drive the broker. The scheduled tick alone keeps the token fresh."
  type        = bool
  default     = false
}

variable "rotation_schedule_expression" {
  description = "Secrets Manager rotation schedule, used only when enable_native_rotation is true."
  type        = string
  default     = "rate(20 hours)"

  validation {
    condition     = can(regex("^(rate|cron)\\(.+\\)$", var.rotation_schedule_expression))
    error_message = "rotation_schedule_expression must be rate(...) or cron(...)."
  }
}
