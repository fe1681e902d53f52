# ------------------------------------------------------------------------------------------
# Naming and code
# ------------------------------------------------------------------------------------------

variable "name" {
  description = "Name prefix of every resource (function, role, log group, alarms, policy): 1-40 letters, digits, '-' or '_', so that every name built from it fits its service's limit (tests/infra_drift.rs checks them all)."
  type        = string
  default     = "iadvize-token-broker"

  validation {
    condition     = can(regex("^[A-Za-z0-9_-]{1,40}$", var.name))
    error_message = "name must be 1-40 characters of letters, digits, '-' or '_': it prefixes the function (64 characters at most), the role (64, with \"-<region>\"), the policies and the rule."
  }
}

variable "local_existing_package" {
  description = "Path of a prebuilt Lambda zip (a `make dist` output such as dist/iadvize-token-broker-0.1.0-arm64.zip, or a downloaded release asset). null = use s3_bucket/s3_key, or build from source (see package_build)."
  type        = string
  default     = null

  validation {
    condition     = var.local_existing_package == null || can(regex("\\.zip$", var.local_existing_package))
    error_message = "local_existing_package must name a .zip file containing the `bootstrap` binary."
  }
}

variable "lambda_zip_path" {
  description = "Deprecated alias of local_existing_package (kept so existing configurations keep working)."
  type        = string
  default     = null

  validation {
    condition     = var.lambda_zip_path == null || can(regex("\\.zip$", var.lambda_zip_path))
    error_message = "lambda_zip_path must name a .zip file containing the `bootstrap` binary."
  }
}

variable "s3_bucket" {
  description = "S3 bucket holding the Lambda zip (a release asset you uploaded). Used when local_existing_package is null; needs s3_key."
  type        = string
  default     = null
}

variable "s3_key" {
  description = "S3 key of the Lambda zip in s3_bucket."
  type        = string
  default     = null
}

variable "s3_object_version" {
  description = "Version of the S3 object (versioned buckets): a new version redeploys the code. null = the key alone (change the key to redeploy)."
  type        = string
  default     = null
}

variable "package_build" {
  description = "Only when neither local_existing_package nor s3_bucket is set: build the package from the repository this module sits in (works from a git source: the whole repository is checked out under .terraform/modules) with `make package ARCH=<architecture>`, which needs Rust, Python 3 and make. false = fail at plan with a message asking for a package."
  type        = bool
  default     = true
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

variable "create_schedule" {
  description = "Create the EventBridge schedule of the refresh tick. false = something else must tick (the token expiry alarm pages when nothing reports for 2 hours)."
  type        = bool
  default     = true
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

variable "reserved_concurrent_executions" {
  description = "Concurrent executions reserved for the function. null (default) = no reservation, so the module deploys in an account whose Lambda concurrency quota is 10. 1 = one invocation at a time (the per-minute login cap is then strict); the account must keep 10 (new accounts) or 100 unreserved executions beside it, else the apply fails with \"decreases account's UnreservedConcurrentExecution below its minimum value\" (infra/README.md \"Reserved concurrency\")."
  type        = number
  default     = null

  validation {
    condition     = var.reserved_concurrent_executions == null || try(var.reserved_concurrent_executions >= 1 && floor(var.reserved_concurrent_executions) == var.reserved_concurrent_executions, false)
    error_message = "reserved_concurrent_executions must be null (no reservation) or a whole number of at least 1 (0 would stop every invocation)."
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

variable "function_tags" {
  description = "More tags on the function (merged over tags)."
  type        = map(string)
  default     = {}
}

variable "iam_tags" {
  description = "More tags on the execution role and the consumer policies (merged over tags)."
  type        = map(string)
  default     = {}
}

variable "secret_tags" {
  description = "More tags on the secrets this module creates (merged over tags; the broker's own iadvize:* tags always win)."
  type        = map(string)
  default     = {}
}

variable "log_group_tags" {
  description = "More tags on the log group (merged over tags)."
  type        = map(string)
  default     = {}
}

variable "event_rule_tags" {
  description = "More tags on the EventBridge rules: the schedule and the credentials-changed rules (merged over tags)."
  type        = map(string)
  default     = {}
}

variable "alarm_tags" {
  description = "More tags on the alarms and the alarm topic (merged over tags)."
  type        = map(string)
  default     = {}
}

variable "report_queue_tags" {
  description = "More tags on the report queue (merged over tags)."
  type        = map(string)
  default     = {}
}

variable "kms_key_tags" {
  description = "More tags on the KMS key of create_kms_key (merged over tags)."
  type        = map(string)
  default     = {}
}

# ------------------------------------------------------------------------------------------
# Secrets
# ------------------------------------------------------------------------------------------

variable "token_secret_name" {
  description = "Name of the token secret consumers read (at most 500 characters: the created credentials secret adds \"/credentials\" and secret names hold 512). null = \"<name>/token\"."
  type        = string
  default     = null

  validation {
    condition     = var.token_secret_name == null || can(regex("^[A-Za-z0-9/_+=.@-]{1,500}$", var.token_secret_name))
    error_message = "token_secret_name may contain only letters, digits and /_+=.@-, at most 500 characters (the credentials secret is named \"<token_secret_name>/credentials\", and secret names hold 512)."
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
  description = "ARN of a customer-managed KMS key that encrypts the secrets. null = the AWS-managed key aws/secretsmanager (no KMS permission is then granted or needed), or the module's own key with create_kms_key."
  type        = string
  default     = null

  validation {
    condition     = var.kms_key_arn == null || can(regex("^arn:aws[a-z-]*:kms:[a-z0-9-]+:[0-9]{12}:key/.+$", var.kms_key_arn))
    error_message = "kms_key_arn must be a KMS key ARN (arn:aws:kms:REGION:ACCOUNT:key/ID)."
  }
}

variable "create_kms_key" {
  description = "Create a customer-managed KMS key (rotated yearly, alias alias/<name>-secrets) for the built-in integration's secrets, with the key policy cross_account_readers need. Not with kms_key_arn: the plan refuses the pair."
  type        = bool
  default     = false
}

variable "cross_account_readers" {
  description = "Principals of other accounts that may read the built-in token secret and report rejected tokens: account IDs (123456789012) or IAM role/user ARNs. Adds a resource policy to the token secret (BlockPublicPolicy) and to the report queue; needs a customer-managed key (create_kms_key, or kms_key_arn whose policy you extend with the cross_account_key_policy_json output)."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for p in var.cross_account_readers : can(regex("^([0-9]{12}|arn:aws[a-z-]*:iam::[0-9]{12}:(root|role/.+|user/.+))$", p))])
    error_message = "cross_account_readers must be 12-digit account IDs or IAM ARNs (arn:aws:iam::ACCOUNT:root, :role/NAME or :user/NAME); a wildcard would make the secret public."
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
# Broker configuration (README, "Configuration"); durations are written like 90s, 15m, 4h.
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
    condition     = can(regex("^([0-9]+(ms|s|m|h|d))+$", var.refresh_before_expiry))
    error_message = "refresh_before_expiry must be a duration such as 4h or 1h30m (units ms, s, m, h, d)."
  }
}

variable "min_login_interval" {
  description = "Minimum spacing between two login attempts per iAdvize user (credentials secret) (IADVIZE_MIN_LOGIN_INTERVAL)."
  type        = string
  default     = "10s"

  validation {
    condition     = can(regex("^([0-9]+(ms|s|m|h|d))+$", var.min_login_interval))
    error_message = "min_login_interval must be a duration such as 10s or 1m30s (units ms, s, m, h, d)."
  }
}

variable "stuck_rotation_after" {
  description = "Age after which the tick resumes an unfinished rotation (IADVIZE_STUCK_ROTATION_AFTER)."
  type        = string
  default     = "15m"

  validation {
    condition     = can(regex("^([0-9]+(ms|s|m|h|d))+$", var.stuck_rotation_after))
    error_message = "stuck_rotation_after must be a duration such as 15m or 1h30m (units ms, s, m, h, d)."
  }
}

variable "http_timeout" {
  description = "Timeout of one HTTP request to iAdvize (IADVIZE_HTTP_TIMEOUT)."
  type        = string
  default     = "10s"

  validation {
    condition     = can(regex("^([0-9]+(ms|s|m|h|d))+$", var.http_timeout))
    error_message = "http_timeout must be a duration such as 10s or 1m30s (units ms, s, m, h, d)."
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

variable "refused_credentials_retry" {
  description = "While iAdvize refuses a credentials version, one probe login per this duration; \"off\" = never probe (IADVIZE_REFUSED_CREDENTIALS_RETRY)."
  type        = string
  default     = "6h"

  validation {
    condition     = can(regex("^(off|([0-9]+(ms|s|m|h|d))+)$", var.refused_credentials_retry))
    error_message = "refused_credentials_retry must be a duration such as 6h or 1h30m, or \"off\"."
  }
}

variable "max_logins_per_minute" {
  description = "Logins the broker may start in any rolling minute (IADVIZE_MAX_LOGINS_PER_MINUTE); iAdvize allows 100 per minute per IP. Each invocation counts the others' logins from the secrets' tags; two that overlap before seeing each other's tags start at most twice this. reserved_concurrent_executions = 1 makes it strict."
  type        = number
  default     = 30

  validation {
    condition     = var.max_logins_per_minute >= 1 && var.max_logins_per_minute <= 100 && floor(var.max_logins_per_minute) == var.max_logins_per_minute
    error_message = "max_logins_per_minute must be an integer between 1 and 100."
  }
}

variable "per_secret_metrics" {
  description = "Also emit per-secret metrics (dimension SecretName) (IADVIZE_PER_SECRET_METRICS). Each series is a billed custom metric; the alarms use the fleet-wide series."
  type        = bool
  default     = false
}

variable "report_verify_interval" {
  description = "One verification of a reported token per this, across invocations (IADVIZE_REPORT_VERIFY_INTERVAL)."
  type        = string
  default     = "1m"

  validation {
    condition     = can(regex("^([0-9]+(ms|s|m|h|d))+$", var.report_verify_interval))
    error_message = "report_verify_interval must be a duration such as 1m or 1m30s (units ms, s, m, h, d)."
  }
}

variable "max_follow_ups" {
  description = "Follow-up invocations a tick may chain while urgent work is left (IADVIZE_MAX_FOLLOW_UPS); 0 = none. At most 15: Lambda's recursive loop detection stops an event's 17th invocation (the tick and 15 follow-ups are 16)."
  type        = number
  default     = 10

  validation {
    condition     = var.max_follow_ups >= 0 && var.max_follow_ups <= 15 && floor(var.max_follow_ups) == var.max_follow_ups
    error_message = "max_follow_ups must be an integer between 0 and 15."
  }
}

variable "throttle_pause" {
  description = "After a login ends in 429, no login starts for at least this long (IADVIZE_THROTTLE_PAUSE)."
  type        = string
  default     = "60s"

  validation {
    condition     = can(regex("^([0-9]+(ms|s|m|h|d))+$", var.throttle_pause))
    error_message = "throttle_pause must be a duration such as 60s or 2m (units ms, s, m, h, d)."
  }
}

variable "application_log_level" {
  description = "Lambda application log level (sets AWS_LAMBDA_LOG_LEVEL): TRACE, DEBUG or INFO only. The metrics ride on log lines that Lambda's filter counts as INFO (an EMF line has no valid level and timestamp), so at WARN or above every metric is dropped and the token expiry alarm, which treats missing data as breaching, pages without end."
  type        = string
  default     = "INFO"

  validation {
    condition     = contains(["TRACE", "DEBUG", "INFO"], var.application_log_level)
    error_message = "application_log_level must be TRACE, DEBUG or INFO: at WARN and above Lambda drops the metric lines (they count as INFO), and the token expiry alarm pages."
  }
}

# ------------------------------------------------------------------------------------------
# Alarms and rotation
# ------------------------------------------------------------------------------------------

variable "create_alarms" {
  description = "Create the Errors and token expiry alarms (and the alarm_email topic)."
  type        = bool
  default     = true
}

variable "create_dashboard" {
  description = "Create the CloudWatch dashboard <name>."
  type        = bool
  default     = true
}

variable "create_credentials_changed_rule" {
  description = "EventBridge rule on Secrets Manager's native Secret Label Updated event (AWSCURRENT moved; no CloudTrail trail needed): new credentials are used within a minute. Scoped by fleet_name_prefix when set."
  type        = bool
  default     = true
}

variable "create_cloudtrail_credentials_rule" {
  description = "Also a rule on the CloudTrail records of PutSecretValue, UpdateSecret and UpdateSecretVersionStage. Needs a CloudTrail trail that logs management events (infra/README.md)."
  type        = bool
  default     = false
}

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

variable "alarm_topic_arns" {
  description = "Existing SNS topics (PagerDuty, Chatbot, ...) the alarms notify, in addition to the alarm_email topic."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for a in var.alarm_topic_arns : can(regex("^arn:aws[a-z-]*:sns:[a-z0-9-]+:[0-9]{12}:.+$", a))])
    error_message = "alarm_topic_arns must be SNS topic ARNs."
  }
}

# ------------------------------------------------------------------------------------------
# Locked-down accounts: role, network, logs
# ------------------------------------------------------------------------------------------

variable "create_role" {
  description = "Create the execution role. false = bring your own (role_arn); a bool, not role_arn == null, so that plans work when your role is created in the same apply."
  type        = bool
  default     = true
}

variable "role_arn" {
  description = "Your own execution role (with create_role = false). It needs the statements of the broker_policy_json output (and AWSLambdaVPCAccessExecutionRole with subnet_ids)."
  type        = string
  default     = null

  validation {
    condition     = var.role_arn == null || can(regex("^arn:aws[a-z-]*:iam::[0-9]{12}:role/.+$", var.role_arn))
    error_message = "role_arn must be an IAM role ARN."
  }
}

variable "role_path" {
  description = "Path of the created role (e.g. /service-roles/)."
  type        = string
  default     = "/"

  validation {
    condition     = can(regex("^/([A-Za-z0-9+=,.@_-]+/)*$", var.role_path))
    error_message = "role_path must start and end with / (e.g. /service-roles/)."
  }
}

variable "permissions_boundary_arn" {
  description = "Permissions boundary of the created role. null = none."
  type        = string
  default     = null

  validation {
    condition     = var.permissions_boundary_arn == null || can(regex("^arn:aws[a-z-]*:iam::([0-9]{12}|aws):policy/.+$", var.permissions_boundary_arn))
    error_message = "permissions_boundary_arn must be an IAM policy ARN."
  }
}

variable "subnet_ids" {
  description = "Run the function in these VPC subnets (private, with a NAT to reach iAdvize and a route or an interface endpoint to Secrets Manager). [] = outside any VPC."
  type        = list(string)
  default     = []
}

variable "security_group_ids" {
  description = "Security groups of the function in the VPC (needs outbound 443). Required with subnet_ids."
  type        = list(string)
  default     = []
}

variable "log_kms_key_arn" {
  description = "KMS key that encrypts the log group. null = CloudWatch Logs' own encryption. The key policy must allow logs.<region>.amazonaws.com."
  type        = string
  default     = null

  validation {
    condition     = var.log_kms_key_arn == null || can(regex("^arn:aws[a-z-]*:kms:[a-z0-9-]+:[0-9]{12}:key/.+$", var.log_kms_key_arn))
    error_message = "log_kms_key_arn must be a KMS key ARN."
  }
}

# ------------------------------------------------------------------------------------------
# Fleets: many integrations, one broker
# ------------------------------------------------------------------------------------------

variable "integrations" {
  description = "More integrations served by the same broker: name => options. Each gets a token secret <name>/<integration>/token (tagged iadvize:managed=true and iadvize:credentials-secret-id, so the broker discovers it by tag: no redeploy needed to add more by hand) and an empty credentials secret <name>/<integration>/credentials (tagged iadvize:credentials=true), plus a consumer policy. Options: tags, kms_key_arn (both secrets), replica_regions (region => KMS key ARN or null, token secret only)."
  type = map(object({
    tags            = optional(map(string), {})
    kms_key_arn     = optional(string)
    replica_regions = optional(map(string), {})
  }))
  default = {}

  validation {
    condition     = alltrue([for k in keys(var.integrations) : can(regex("^[A-Za-z0-9_.-]{1,48}$", k))])
    error_message = "integrations keys must be 1-48 letters, digits, '.', '-' or '_' (the consumer policy \"<name>-read-token-<key>-<region>\" must fit IAM's 128 characters)."
  }

  validation {
    condition     = alltrue([for i in values(var.integrations) : i.kms_key_arn == null || can(regex("^arn:aws[a-z-]*:kms:", i.kms_key_arn))])
    error_message = "integrations[*].kms_key_arn must be a KMS key ARN or null."
  }
}

variable "fleet_name_prefix" {
  description = "Secrets the broker may manage by tag must also be named with this prefix (token secrets tagged iadvize:managed=true, credentials secrets tagged iadvize:credentials=true). \"\" = any name: then anyone who may tag secrets can enrol any secret (see infra/README.md \"Fleets and IAM\")."
  type        = string
  default     = ""

  validation {
    condition     = can(regex("^[A-Za-z0-9/_+=.@-]*$", var.fleet_name_prefix))
    error_message = "fleet_name_prefix may contain only letters, digits and /_+=.@-."
  }
}

variable "fleet_kms_key_arns" {
  description = "Customer-managed KMS keys of secrets onboarded by tag (outside this module); the role may use them through Secrets Manager only."
  type        = list(string)
  default     = []
}
