# An Application Load Balancer terminates TLS with the ACM certificate and forwards gRPC over
# HTTP/2 to the tasks (target group protocol_version GRPC). Between the load balancer and the
# tasks the traffic stays inside the VPC, unencrypted; the security groups admit only the load
# balancer to the gRPC port.
#
# Health: the load balancer calls grpc.health.v1.Health/Check on the gRPC port and expects gRPC
# status 0. That is the same service a gRPC client would use, and it reports NOT_SERVING while a
# task cannot reach S3 or Redis, so traffic moves to the tasks that can.

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
      condition     = length(local.prefix) <= 27
      error_message = "name and region_name together are too long: \"${local.prefix}-grpc\" exceeds the load balancer's 32 characters."
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
