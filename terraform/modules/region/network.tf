# Three security groups: the load balancer takes TLS on 443 from allowed_client_cidrs; the tasks
# take gRPC and readiness checks only from the load balancer and HTTP (metrics) from
# metrics_cidrs; Redis takes connections only from the tasks.

resource "aws_security_group" "alb" {
  name        = "${local.prefix}-alb"
  description = "Tessera load balancer: gRPC over TLS from clients and peer regions"
  vpc_id      = var.vpc_id
  tags        = local.tags
}

resource "aws_vpc_security_group_ingress_rule" "alb_tls" {
  for_each = toset(var.allowed_client_cidrs)

  security_group_id = aws_security_group.alb.id
  description       = "gRPC over TLS"
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
  cidr_ipv4         = each.value
}

resource "aws_vpc_security_group_egress_rule" "alb_to_tasks" {
  security_group_id            = aws_security_group.alb.id
  description                  = "gRPC to the tasks"
  ip_protocol                  = "tcp"
  from_port                    = local.grpc_port
  to_port                      = local.grpc_port
  referenced_security_group_id = aws_security_group.tasks.id
}

resource "aws_vpc_security_group_egress_rule" "alb_to_tasks_readiness" {
  security_group_id            = aws_security_group.alb.id
  description                  = "readiness checks of the tasks"
  ip_protocol                  = "tcp"
  from_port                    = local.http_port
  to_port                      = local.http_port
  referenced_security_group_id = aws_security_group.tasks.id
}

resource "aws_security_group" "tasks" {
  name        = "${local.prefix}-tasks"
  description = "Tessera tasks"
  vpc_id      = var.vpc_id
  tags        = local.tags
}

resource "aws_vpc_security_group_ingress_rule" "tasks_grpc" {
  security_group_id            = aws_security_group.tasks.id
  description                  = "gRPC and its health checks from the load balancer"
  ip_protocol                  = "tcp"
  from_port                    = local.grpc_port
  to_port                      = local.grpc_port
  referenced_security_group_id = aws_security_group.alb.id
}

resource "aws_vpc_security_group_ingress_rule" "tasks_readiness" {
  security_group_id            = aws_security_group.tasks.id
  description                  = "GET /readyz from the load balancer"
  ip_protocol                  = "tcp"
  from_port                    = local.http_port
  to_port                      = local.http_port
  referenced_security_group_id = aws_security_group.alb.id
}

resource "aws_vpc_security_group_ingress_rule" "tasks_metrics" {
  for_each = toset(var.metrics_cidrs)

  security_group_id = aws_security_group.tasks.id
  description       = "metrics and health over HTTP"
  ip_protocol       = "tcp"
  from_port         = local.http_port
  to_port           = local.http_port
  cidr_ipv4         = each.value
}

# The tasks reach S3, Redis, the image registry, CloudWatch Logs, Secrets Manager and the peer
# regions' load balancers over HTTPS and TLS; nothing else.
resource "aws_vpc_security_group_egress_rule" "tasks_https" {
  security_group_id = aws_security_group.tasks.id
  description       = "HTTPS: S3, registry, logs, secrets, peer regions"
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
  cidr_ipv4         = "0.0.0.0/0"
}

resource "aws_vpc_security_group_egress_rule" "tasks_redis" {
  security_group_id            = aws_security_group.tasks.id
  description                  = "Redis"
  ip_protocol                  = "tcp"
  from_port                    = 6379
  to_port                      = 6379
  referenced_security_group_id = aws_security_group.redis.id
}

resource "aws_security_group" "redis" {
  name        = "${local.prefix}-redis"
  description = "Tessera commit index"
  vpc_id      = var.vpc_id
  tags        = local.tags
}

resource "aws_vpc_security_group_ingress_rule" "redis_from_tasks" {
  security_group_id            = aws_security_group.redis.id
  description                  = "Redis from the Tessera tasks"
  ip_protocol                  = "tcp"
  from_port                    = 6379
  to_port                      = 6379
  referenced_security_group_id = aws_security_group.tasks.id
}
