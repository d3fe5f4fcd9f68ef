# An Application Load Balancer terminates TLS with the ACM certificate and forwards gRPC over
# HTTP/2 to the tasks (target group protocol_version GRPC). Between the load balancer and the
# tasks the traffic stays inside the VPC, unencrypted; the security groups admit only the load
# balancer to the gRPC port.
#
# Health, in two parts:
# - Liveness: the gRPC target group calls grpc.health.v1.Health/Check and expects gRPC status 0.
#   The load balancer reads only the status code, not the SERVING / NOT_SERVING in the reply, so
#   this shows that a task answers gRPC, no more.
# - Readiness: a second target group on the operations port asks GET /readyz, which answers 503
#   while the task cannot reach its bucket or Redis. A CloudWatch alarm on that group's healthy
#   tasks feeds a Route 53 health check, and the latency record of a region with no ready task is
#   withdrawn, so clients go to another region (which reads through, or misses, as usual). A
#   listener rule forwards /readyz from the listener to it: ECS attaches tasks only to a target
#   group that a load balancer uses. /readyz tells only whether each backend answers.

resource "aws_lb" "grpc" {
  name               = "${local.prefix}-grpc"
  load_balancer_type = "application"
  internal           = false
  security_groups    = [aws_security_group.alb.id]
  subnets            = var.public_subnet_ids

  # Long uploads and downloads are single streams; data flowing keeps them open, this bounds idle
  # connections only.
  idle_timeout               = 300
  drop_invalid_header_fields = true
  tags                       = local.tags

  lifecycle {
    precondition {
      condition     = length(local.prefix) <= 26
      error_message = "name and region_name together are too long: \"${local.prefix}-ready\" exceeds the 32 characters of a target group name."
    }
  }
}

resource "aws_lb_target_group" "grpc" {
  name             = "${local.prefix}-grpc"
  target_type      = "ip"
  vpc_id           = var.vpc_id
  port             = local.grpc_port
  protocol         = "HTTP"
  protocol_version = "GRPC"

  # Longer than Tessera's drain (TESSERA_SHUTDOWN_GRACE_SECONDS, 30 s) so running calls finish.
  deregistration_delay = 45

  health_check {
    enabled             = true
    protocol            = "HTTP"
    port                = "traffic-port"
    path                = "/grpc.health.v1.Health/Check"
    matcher             = "0"
    interval            = 10
    timeout             = 5
    healthy_threshold   = 2
    unhealthy_threshold = 3
  }

  tags = local.tags
}

resource "aws_lb_listener" "grpcs" {
  load_balancer_arn = aws_lb.grpc.arn
  port              = 443
  protocol          = "HTTPS"
  ssl_policy        = "ELBSecurityPolicy-TLS13-1-2-2021-06"
  certificate_arn   = var.certificate_arn

  default_action {
    type             = "forward"
    target_group_arn = aws_lb_target_group.grpc.arn
  }

  tags = local.tags
}

resource "aws_lb_target_group" "readiness" {
  name        = "${local.prefix}-ready"
  target_type = "ip"
  vpc_id      = var.vpc_id
  port        = local.http_port
  protocol    = "HTTP"

  deregistration_delay = 45

  health_check {
    enabled             = true
    protocol            = "HTTP"
    port                = "traffic-port"
    path                = "/readyz"
    matcher             = "200"
    interval            = 10
    timeout             = 5
    healthy_threshold   = 2
    unhealthy_threshold = 2
  }

  tags = local.tags
}

resource "aws_lb_listener_rule" "readiness" {
  listener_arn = aws_lb_listener.grpcs.arn
  priority     = 10

  action {
    type             = "forward"
    target_group_arn = aws_lb_target_group.readiness.arn
  }

  condition {
    path_pattern {
      values = ["/readyz"]
    }
  }

  tags = local.tags
}

resource "aws_cloudwatch_metric_alarm" "not_ready" {
  alarm_name          = "${local.prefix}-not-ready"
  alarm_description   = "No Tessera task in ${var.region_name} reports ready (/readyz): its bucket or Redis is unreachable."
  namespace           = "AWS/ApplicationELB"
  metric_name         = "HealthyHostCount"
  statistic           = "Minimum"
  period              = 60
  evaluation_periods  = 2
  threshold           = 1
  comparison_operator = "LessThanThreshold"
  treat_missing_data  = "breaching"

  dimensions = {
    LoadBalancer = aws_lb.grpc.arn_suffix
    TargetGroup  = aws_lb_target_group.readiness.arn_suffix
  }

  tags = local.tags
}

resource "aws_route53_health_check" "ready" {
  type                            = "CLOUDWATCH_METRIC"
  cloudwatch_alarm_name           = aws_cloudwatch_metric_alarm.not_ready.alarm_name
  cloudwatch_alarm_region         = var.aws_region
  insufficient_data_health_status = "LastKnownStatus"

  tags = merge(local.tags, { Name = "${local.prefix}-ready" })
}
