# ------------------------------------------------------------------------------------------
# Optional: a customer-managed key for the built-in integration's secrets, and consumers in
# other accounts (cross_account_readers). Another account can only decrypt a secret under a
# customer-managed key whose key policy lets it
# (https://docs.aws.amazon.com/secretsmanager/latest/userguide/auth-and-access_examples_cross.html).
# ------------------------------------------------------------------------------------------

data "aws_iam_policy_document" "secrets_key" {
  count = var.create_kms_key ? 1 : 0

  # The account administers the key through IAM, as with a key created in the console: the
  # broker's role and the consumer policy get their KMS permissions from IAM policies.
  #checkov:skip=CKV_AWS_109:A key policy's "*" resource is the key itself; the account root statement is AWS's default key policy.
  #checkov:skip=CKV_AWS_111:A key policy's "*" resource is the key itself; the account root statement is AWS's default key policy.
  #checkov:skip=CKV_AWS_356:A key policy's "*" resource is the key itself.
  statement {
    sid       = "AccountAdministers"
    actions   = ["kms:*"]
    resources = ["*"]
    principals {
      type        = "AWS"
      identifiers = ["arn:${local.partition}:iam::${local.account_id}:root"]
    }
  }

  # Readers in other accounts decrypt the token through Secrets Manager in this region only.
  dynamic "statement" {
    for_each = length(var.cross_account_readers) == 0 ? [] : [1]
    content {
      sid       = "CrossAccountReadersDecryptViaSecretsManager"
      actions   = ["kms:Decrypt", "kms:DescribeKey"]
      resources = ["*"]
      principals {
        type        = "AWS"
        identifiers = var.cross_account_readers
      }
      condition {
        test     = "StringEquals"
        variable = "kms:ViaService"
        values   = ["secretsmanager.${local.region}.amazonaws.com"]
      }
    }
  }
}

resource "aws_kms_key" "secrets" {
  count = var.create_kms_key ? 1 : 0

  description             = "iadvize-token-broker ${var.name}: the token and credentials secrets"
  enable_key_rotation     = true
  deletion_window_in_days = 30
  policy                  = data.aws_iam_policy_document.secrets_key[0].json
  tags                    = merge(var.tags, var.kms_key_tags)

  # Both set would encrypt with this key and ignore kms_key_arn without a word. A variable's
  # validation may name another variable only from Terraform 1.9; the module supports 1.4.
  lifecycle {
    precondition {
      condition     = var.kms_key_arn == null
      error_message = "Set either create_kms_key = true or kms_key_arn, not both (with both, the module would create its own key and ignore kms_key_arn)."
    }
  }
}

resource "aws_kms_alias" "secrets" {
  count = var.create_kms_key ? 1 : 0

  name          = "alias/${var.name}-secrets"
  target_key_id = aws_kms_key.secrets[0].key_id
}

# Read access for the readers of other accounts: GetSecretValue and DescribeSecret on the
# token secret only. BlockPublicPolicy makes Secrets Manager refuse a policy that would open
# the secret to everyone. Each reader still needs an IAM policy in its own account
# (infra/README.md "Cross-account consumers").
data "aws_iam_policy_document" "token_secret" {
  count = length(var.cross_account_readers) == 0 ? 0 : 1

  statement {
    sid       = "CrossAccountReaders"
    actions   = ["secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret"]
    resources = ["*"]
    principals {
      type        = "AWS"
      identifiers = var.cross_account_readers
    }
  }
}

resource "aws_secretsmanager_secret_policy" "token" {
  count = length(var.cross_account_readers) == 0 ? 0 : 1

  secret_arn          = aws_secretsmanager_secret.token.arn
  policy              = data.aws_iam_policy_document.token_secret[0].json
  block_public_policy = true

  lifecycle {
    precondition {
      condition     = local.has_kms_key
      error_message = "cross_account_readers need a customer-managed KMS key: another account cannot decrypt a secret under aws/secretsmanager. Set create_kms_key = true (the module then writes the key policy they need) or kms_key_arn (then add the statement of the cross_account_key_policy_json output to that key's policy)."
    }
  }
}
