# The commit index: an ElastiCache replication group (cluster mode off, one shard) with a primary
# and redis_replicas replicas in other availability zones, automatic failover and Multi-AZ, TLS in
# transit, encryption at rest, an auth token, and daily snapshots.
#
# Why ElastiCache rather than MemoryDB: Tessera's correctness does not depend on Redis keeping its
# last writes. A failover that loses the newest commit entries (replication is asynchronous) makes
# those blobs look missing, never present without bytes, and the next upload commits them again;
# test/integration/redis-lost-writes.test.ts checks exactly that. MemoryDB's durable log would
# avoid those re-uploads but costs more per GiB and adds milliseconds to every commit. Choose
# MemoryDB if re-uploading a few seconds of builds after a failover is not acceptable.
#
# Eviction: none. Commit entries have no TTL (the collector removes them), but the keys that keep
# the collector safe do: write intents and tombstones. A Redis that evicted those under memory
# pressure could let the collector delete a blob being written. With noeviction a full Redis
# refuses writes instead, which clients see as failed uploads: size the node (about 330
# bytes per blob, see redis_node_type) or set gc_budget_bytes, and alert on memory use.

resource "aws_elasticache_subnet_group" "commits" {
  name       = "${local.prefix}-commits"
  subnet_ids = var.private_subnet_ids
  tags       = local.tags
}

resource "aws_elasticache_parameter_group" "commits" {
  name   = "${local.prefix}-commits"
  family = "redis7"

  parameter {
    name  = "maxmemory-policy"
    value = "noeviction"
  }

  tags = local.tags
}

resource "aws_elasticache_replication_group" "commits" {
  replication_group_id = "${local.prefix}-commits"
  description          = "Tessera commit index for ${var.region_name}"

  engine               = "redis"
  engine_version       = "7.1"
  node_type            = var.redis_node_type
  port                 = 6379
  parameter_group_name = aws_elasticache_parameter_group.commits.name
  subnet_group_name    = aws_elasticache_subnet_group.commits.name
  security_group_ids   = [aws_security_group.redis.id]

  num_cache_clusters         = var.redis_replicas + 1
  automatic_failover_enabled = true
  multi_az_enabled           = true

  at_rest_encryption_enabled = true
  transit_encryption_enabled = true
  auth_token                 = var.redis_auth_token

  snapshot_retention_limit = 7
  snapshot_window          = "03:00-04:00"
  maintenance_window       = "sun:05:00-sun:06:00"

  apply_immediately = false
  tags              = local.tags
}
