variable "region" {
  description = "AWS region to deploy to."
  type        = string
  default     = "us-east-1"
}

variable "name" {
  description = "Name prefix of the broker's resources (1-40 characters)."
  type        = string
  default     = "iadvize-token-broker"

  validation {
    condition     = can(regex("^[A-Za-z0-9_-]{1,40}$", var.name))
    error_message = "name must be 1-40 characters of letters, digits, '-' or '_' (the module's limit, so that every name built from it fits)."
  }
}

variable "package" {
  description = "The release zip: iadvize-token-broker-<version>-<arch>.zip (a release asset, or `make dist` output in dist/)."
  type        = string
}

variable "architecture" {
  description = "Architecture of the release zip: x86_64 or arm64."
  type        = string
  default     = "x86_64"
}

variable "alarm_email" {
  description = "E-mail address notified by the alarms (null = none)."
  type        = string
  default     = null
}

variable "replica_regions" {
  description = "Regions to replicate the token secret to (region => KMS key ARN or null)."
  type        = map(string)
  default     = {}
}

variable "recovery_window_in_days" {
  description = "Recovery window of the secrets on destroy (0 = delete at once, e.g. in tests)."
  type        = number
  default     = 7
}

# Local testing only: point the provider at a stand-in such as moto's server.
variable "aws_endpoint_url" {
  description = "Send every AWS call to this endpoint (e.g. http://127.0.0.1:5000 for moto). null = real AWS."
  type        = string
  default     = null
}
