terraform {
  # terraform_data (package.tf) appeared in Terraform 1.4; optional() object attributes with
  # defaults in 1.3. Nothing newer is used (checked on paper: only 1.11 is installed here).
  required_version = ">= 1.4"

  required_providers {
    aws = {
      source = "hashicorp/aws"
      # 5.33.0 added rotate_immediately (aws_secretsmanager_secret_rotation), the newest
      # argument used here (logging_config on aws_lambda_function: 5.32.0). Terraform
      # validates an argument even in a resource whose count is 0, so older versions fail
      # whatever the inputs. Checked against the provider's CHANGELOG; only the newest 5.x
      # is in the offline mirror.
      version = ">= 5.33.0, < 7.0"
    }
  }
}
