# ------------------------------------------------------------------------------------------
# A CloudWatch dashboard: the broker's fleet-wide metrics (namespace IadvizeTokenBroker, no
# dimension, or the Outcome dimension), its invocations and its report queue.
# ------------------------------------------------------------------------------------------

locals {
  metrics_namespace = "IadvizeTokenBroker"
  # SEARCH picks every Outcome the broker emits (ok, throttled, refused, transient for logins;
  # superseded, accepted, refreshed, ... for reports) without listing them here.
  by_outcome = "SEARCH('{${local.metrics_namespace},Outcome} MetricName=\"%s\"', 'Sum', 300)"

  dashboard_widgets = [
    {
      type = "metric", x = 0, y = 0, width = 12, height = 6
      properties = {
        title   = "Minimum seconds until a token expires (alarm below 10800)"
        region  = local.region, view = "timeSeries", stat = "Minimum", period = 300
        metrics = [[local.metrics_namespace, "MinSecondsUntilExpiry"]]
        annotations = {
          horizontal = [{ label = "token expiry alarm", value = 10800 }]
        }
        yAxis = { left = { min = 0 } }
      }
    },
    {
      type = "metric", x = 12, y = 0, width = 12, height = 6
      properties = {
        title  = "Logins by outcome"
        region = local.region, view = "timeSeries", stat = "Sum", period = 300
        metrics = [
          [{ expression = format(local.by_outcome, "LoginAttempts"), id = "logins" }],
        ]
      }
    },
    {
      type = "metric", x = 0, y = 6, width = 12, height = 6
      properties = {
        title  = "Token secrets per tick"
        region = local.region, view = "timeSeries", stat = "Sum", period = 300
        metrics = [
          [local.metrics_namespace, "SecretsRefreshed"],
          [local.metrics_namespace, "SecretsFailed"],
          [local.metrics_namespace, "SecretsDeferred"],
          [local.metrics_namespace, "SecretsManaged", { stat = "Maximum" }],
        ]
      }
    },
    {
      type = "metric", x = 12, y = 6, width = 12, height = 6
      properties = {
        title  = "Rejection reports and follow-ups"
        region = local.region, view = "timeSeries", stat = "Sum", period = 300
        metrics = [
          [{ expression = format(local.by_outcome, "RejectionReports"), id = "reports" }],
          [local.metrics_namespace, "ReportBodiesIgnored"],
          [local.metrics_namespace, "FollowUpsSent"],
        ]
      }
    },
    {
      type = "metric", x = 0, y = 12, width = 12, height = 6
      properties = {
        title  = "Invocations, errors and throttles"
        region = local.region, view = "timeSeries", stat = "Sum", period = 300
        metrics = [
          ["AWS/Lambda", "Invocations", "FunctionName", var.name],
          ["AWS/Lambda", "Errors", "FunctionName", var.name],
          ["AWS/Lambda", "Throttles", "FunctionName", var.name],
        ]
      }
    },
    {
      type = "metric", x = 12, y = 12, width = 12, height = 6
      properties = {
        title  = "Report queue"
        region = local.region, view = "timeSeries", stat = "Sum", period = 300
        metrics = [
          ["AWS/SQS", "NumberOfMessagesSent", "QueueName", "${var.name}-reports.fifo"],
          ["AWS/SQS", "ApproximateNumberOfMessagesVisible", "QueueName", "${var.name}-reports.fifo", { stat = "Maximum" }],
          ["AWS/SQS", "ApproximateAgeOfOldestMessage", "QueueName", "${var.name}-reports.fifo", { stat = "Maximum" }],
        ]
      }
    },
  ]
}

resource "aws_cloudwatch_dashboard" "broker" {
  count = var.create_dashboard ? 1 : 0

  dashboard_name = var.name
  dashboard_body = jsonencode({ widgets = local.dashboard_widgets })
}
