# One Tessera region: a bucket for the blobs, a Redis replication group for the commit index, and
# an ECS Fargate service behind an internet-facing Application Load Balancer that speaks gRPC
# over TLS. The region serves only from its own bucket and Redis; it reaches the other regions
# through their public endpoints (TESSERA_PEERS), never through their Redis.

locals {
  prefix = "${var.name}-${var.region_name}"

  grpc_port = 8980
  http_port = 9090

  tags = merge(var.tags, {
    "tessera:deployment" = var.name
    "tessera:region"     = var.region_name
  })
}

data "aws_caller_identity" "current" {}

data "aws_partition" "current" {}
