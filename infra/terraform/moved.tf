# Resources that became optional (count) keep their state: an existing deployment upgrades
# in place instead of destroying and recreating them.

moved {
  from = aws_cloudwatch_event_rule.tick
  to   = aws_cloudwatch_event_rule.tick[0]
}

moved {
  from = aws_cloudwatch_event_target.tick
  to   = aws_cloudwatch_event_target.tick[0]
}

moved {
  from = aws_lambda_permission.tick
  to   = aws_lambda_permission.tick[0]
}

moved {
  from = aws_cloudwatch_metric_alarm.errors
  to   = aws_cloudwatch_metric_alarm.errors[0]
}

moved {
  from = aws_cloudwatch_metric_alarm.token_expiry
  to   = aws_cloudwatch_metric_alarm.token_expiry[0]
}
