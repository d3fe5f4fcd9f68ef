# The Tessera service on ECS Fargate: settings as environment variables, secrets (the Redis URL
# with its password, the peer list with its token, the accepted tokens) injected from one Secrets
# Manager secret, logs to CloudWatch, and CPU target tracking between min_tasks and max_tasks.

locals {
  redis_url = "rediss://:${var.redis_auth_token}@${aws_elasticache_replication_group.commits.primary_endpoint_address}:6379"

  peers = [
    for peer in var.peers : merge(
      { name = peer.name, endpoint = peer.endpoint },
      var.peer_token == "" ? {} : { token = var.peer_token },
    )
  ]

  # Peers present peer_token. Read-through only reads; replication also writes blobs and results.
  peer_permissions = var.replication == "on" ? "read+write+ac-write" : "read"
  auth_tokens      = join(",", compact([var.client_tokens, var.peer_token == "" ? "" : "${var.peer_token}:${local.peer_permissions}"]))

  gib               = 1024 * 1024 * 1024
  staging_max_bytes = floor(var.ephemeral_storage_gib * 0.5 * local.gib)
  read_cache_bytes  = floor(var.ephemeral_storage_gib * var.read_cache_percent / 100 * local.gib)

  environment = {
    TESSERA_LISTEN                 = "0.0.0.0:${local.grpc_port}"
    TESSERA_HTTP_LISTEN            = "0.0.0.0:${local.http_port}"
    TESSERA_REGION                 = var.region_name
    TESSERA_PEER_TIMEOUT_MS        = tostring(var.peer_timeout_ms)
    TESSERA_REPLICATION            = var.replication
    TESSERA_S3_BUCKET              = aws_s3_bucket.blobs.bucket
    TESSERA_S3_REGION              = var.aws_region
    TESSERA_CAS_LEASE_SECONDS      = tostring(var.cas_lease_seconds)
    TESSERA_STAGING_MAX_BYTES      = tostring(local.staging_max_bytes)
    TESSERA_READ_CACHE_BYTES       = tostring(local.read_cache_bytes)
    TESSERA_GC_BUDGET_BYTES        = tostring(var.gc_budget_bytes)
    TESSERA_LOG_LEVEL              = var.log_level
    TESSERA_SHUTDOWN_GRACE_SECONDS = "30"
  }

  # Each value is a key of the runtime secret's JSON.
  secrets = {
    TESSERA_REDIS_URL   = "redis_url"
    TESSERA_PEERS       = "peers"
    TESSERA_AUTH_TOKENS = "auth_tokens"
  }
}

resource "aws_secretsmanager_secret" "runtime" {
  name_prefix = "${local.prefix}-runtime-"
  description = "Tessera ${var.region_name}: Redis URL, peers and accepted tokens"
  tags        = local.tags
}

resource "aws_secretsmanager_secret_version" "runtime" {
  secret_id = aws_secretsmanager_secret.runtime.id
  secret_string = jsonencode({
    redis_url   = local.redis_url
    peers       = jsonencode(local.peers)
    auth_tokens = local.auth_tokens
  })
}

resource "aws_cloudwatch_log_group" "service" {
  name              = "/tessera/${var.name}/${var.region_name}"
  retention_in_days = var.log_retention_days
  tags              = local.tags
}

resource "aws_ecs_cluster" "this" {
  name = local.prefix

  setting {
    name  = "containerInsights"
    value = "enabled"
  }

  tags = local.tags
}

resource "aws_ecs_task_definition" "tessera" {
  family                   = local.prefix
  requires_compatibilities = ["FARGATE"]
  network_mode             = "awsvpc"
  cpu                      = var.task_cpu
  memory                   = var.task_memory
  execution_role_arn       = aws_iam_role.execution.arn
  task_role_arn            = aws_iam_role.task.arn

  # Staging lives in the container's writable layer, which Fargate backs with this storage.
  ephemeral_storage {
    size_in_gib = var.ephemeral_storage_gib
  }

  runtime_platform {
    operating_system_family = "LINUX"
    cpu_architecture        = "X86_64"
  }

  container_definitions = jsonencode([
    {
      name      = "tessera"
      image     = var.image
      essential = true
      portMappings = [
        { name = "grpc", containerPort = local.grpc_port, protocol = "tcp" },
        { name = "http", containerPort = local.http_port, protocol = "tcp" },
      ]
      environment = [for key, value in local.environment : { name = key, value = value }]
      secrets = [
        for key, field in local.secrets : {
          name      = key
          valueFrom = "${aws_secretsmanager_secret.runtime.arn}:${field}::"
        }
      ]
      # ECS ignores the image's HEALTHCHECK; this runs the same script.
      healthCheck = {
        command     = ["CMD", "node", "infra/healthcheck.js"]
        interval    = 10
        timeout     = 5
        retries     = 3
        startPeriod = 20
      }
      # SIGTERM starts Tessera's 30 s drain; SIGKILL follows after stopTimeout (Fargate caps it at 120).
      stopTimeout = 40
      logConfiguration = {
        logDriver = "awslogs"
        options = {
          "awslogs-group"         = aws_cloudwatch_log_group.service.name
          "awslogs-region"        = var.aws_region
          "awslogs-stream-prefix" = "tessera"
        }
      }
    }
  ])

  tags = local.tags

  # The secret's value must exist before a task starts and reads it.
  depends_on = [aws_secretsmanager_secret_version.runtime]
}

resource "aws_ecs_service" "tessera" {
  name            = "tessera"
  cluster         = aws_ecs_cluster.this.id
  task_definition = aws_ecs_task_definition.tessera.arn
  launch_type     = "FARGATE"
  desired_count   = var.min_tasks

  deployment_minimum_healthy_percent = 100
  deployment_maximum_percent         = 200
  health_check_grace_period_seconds  = 30
  propagate_tags                     = "SERVICE"

  deployment_circuit_breaker {
    enable   = true
    rollback = true
  }

  network_configuration {
    subnets          = var.private_subnet_ids
    security_groups  = [aws_security_group.tasks.id]
    assign_public_ip = false
  }

  load_balancer {
    target_group_arn = aws_lb_target_group.grpc.arn
    container_name   = "tessera"
    container_port   = local.grpc_port
  }

  load_balancer {
    target_group_arn = aws_lb_target_group.readiness.arn
    container_name   = "tessera"
    container_port   = local.http_port
  }

  tags = local.tags

  # The autoscaler owns the task count once the service exists.
  lifecycle {
    ignore_changes = [desired_count]
  }

  depends_on = [aws_lb_listener.grpcs, aws_lb_listener_rule.readiness]
}

resource "aws_appautoscaling_target" "tessera" {
  service_namespace  = "ecs"
  resource_id        = "service/${aws_ecs_cluster.this.name}/${aws_ecs_service.tessera.name}"
  scalable_dimension = "ecs:service:DesiredCount"
  min_capacity       = var.min_tasks
  max_capacity       = var.max_tasks
}

resource "aws_appautoscaling_policy" "cpu" {
  name               = "${local.prefix}-cpu"
  policy_type        = "TargetTrackingScaling"
  service_namespace  = aws_appautoscaling_target.tessera.service_namespace
  resource_id        = aws_appautoscaling_target.tessera.resource_id
  scalable_dimension = aws_appautoscaling_target.tessera.scalable_dimension

  target_tracking_scaling_policy_configuration {
    target_value = var.cpu_target_percent

    predefined_metric_specification {
      predefined_metric_type = "ECSServiceAverageCPUUtilization"
    }

    # Scale out quickly; scale in slowly, since a task stopping drains its uploads.
    scale_out_cooldown = 60
    scale_in_cooldown  = 300
  }
}
