terraform {
  # The module's own minimums (infra/terraform/versions.tf says why).
  required_version = ">= 1.4"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = ">= 5.33.0, < 7.0"
    }
  }
}
