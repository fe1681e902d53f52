# ------------------------------------------------------------------------------------------
# Rejection reports: consumers send {"action":"report-rejected","secret_id","token_sha256"} to
# an SQS FIFO queue, never to the function (a consumer allowed to invoke the broker could send
# it any event). The queue triggers the broker through an event source mapping.
# ------------------------------------------------------------------------------------------

# Encrypted with SQS-managed keys: a report holds a secret's name and a SHA-256 of a token,
# and senders in other accounts need no KMS grant this way.
resource "aws_sqs_queue" "reports" {
  name                        = "${var.name}-reports.fifo"
  fifo_queue                  = true
  content_based_deduplication = true
  sqs_managed_sse_enabled     = true
  # Lambda's rule for a queue behind an event source mapping: at least six times the
  # function's timeout, so a batch is never visible again while an invocation still runs.
  visibility_timeout_seconds = var.timeout * 6
  # A report only helps while its consumer still fails; one still failing reports again.
  message_retention_seconds = 3600
  tags                      = merge(var.tags, var.report_queue_tags)
}

data "aws_iam_policy_document" "reports_queue" {
  # No plain-HTTP access.
  statement {
    sid       = "DenyInsecureTransport"
    effect    = "Deny"
    actions   = ["sqs:*"]
    resources = [aws_sqs_queue.reports.arn]
    principals {
      type        = "*"
      identifiers = ["*"]
    }
    condition {
      test     = "Bool"
      variable = "aws:SecureTransport"
      values   = ["false"]
    }
  }

  # A role you bring (create_role = false) gets the poller's three actions here, in the
  # queue's own policy: the event source mapping needs them when it is created, and this
  # module does not change your role (in one account, an allow in either policy suffices).
  dynamic "statement" {
    for_each = var.create_role ? [] : [1]
    content {
      sid       = "ExecutionRolePolls"
      actions   = ["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"]
      resources = [aws_sqs_queue.reports.arn]
      principals {
        type        = "AWS"
        identifiers = [var.role_arn]
      }
    }
  }

  # Consumers in other accounts report like local ones.
  dynamic "statement" {
    for_each = length(var.cross_account_readers) == 0 ? [] : [1]
    content {
      sid       = "CrossAccountReports"
      actions   = ["sqs:SendMessage"]
      resources = [aws_sqs_queue.reports.arn]
      principals {
        type        = "AWS"
        identifiers = var.cross_account_readers
      }
    }
  }
}

resource "aws_sqs_queue_policy" "reports" {
  queue_url = aws_sqs_queue.reports.id
  policy    = data.aws_iam_policy_document.reports_queue.json
}

# Small batches, at most two concurrent invocations (a flood of reports cannot take the
# account's concurrency; 2 is the lowest maximum SQS mappings accept), and no partial batch
# responses: the broker answers success for every batch, so records are never retried.
resource "aws_lambda_event_source_mapping" "reports" {
  event_source_arn = aws_sqs_queue.reports.arn
  function_name    = aws_lambda_function.broker.arn
  batch_size       = 5

  scaling_config {
    maximum_concurrency = 2
  }

  # The poller's permissions must exist first: Lambda checks them at creation.
  depends_on = [aws_iam_role_policy.broker, aws_sqs_queue_policy.reports]
}
