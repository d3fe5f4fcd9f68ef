# Inputs of one Tessera region: its own bucket, Redis and service, and the endpoints of the other
# regions it reads through from. The root module (terraform/main.tf) fills these for every region
# in its list; a single-region deployment can call this module directly with `peers = []`.

variable "name" {
  description = "Deployment name, used as a prefix for every resource name (lowercase letters, digits, hyphens)."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,19}$", var.name))
    error_message = "name must be 2 to 20 lowercase letters, digits or hyphens, starting with a letter."
  }
}

variable "region_name" {
  description = "This region's name as Tessera knows it (TESSERA_REGION); peers refer to it by this name."
  type        = string

  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9-]{0,30}$", var.region_name))
    error_message = "region_name must be lowercase letters, digits and hyphens, at most 31 characters."
  }
}

variable "aws_region" {
  description = "AWS region the provider of this module deploys into; also TESSERA_S3_REGION."
  type        = string
}

variable "image" {
  description = "Container image built from infra/Dockerfile, e.g. 123456789012.dkr.ecr.eu-west-1.amazonaws.com/tessera:0.1.0."
  type        = string
}

variable "vpc_id" {
  description = "VPC for the load balancer, the tasks and Redis."
  type        = string
}

variable "public_subnet_ids" {
  description = "Subnets of the internet-facing load balancer, in at least two availability zones."
  type        = list(string)

  validation {
    condition     = length(var.public_subnet_ids) >= 2
    error_message = "public_subnet_ids needs subnets in at least two availability zones."
  }
}

variable "private_subnet_ids" {
  description = "Subnets of the tasks and of Redis, in at least two availability zones. They need a route to the internet (NAT) for the image registry, CloudWatch Logs, Secrets Manager and the peer regions' endpoints."
  type        = list(string)

  validation {
    condition     = length(var.private_subnet_ids) >= 2
    error_message = "private_subnet_ids needs subnets in at least two availability zones (Redis runs Multi-AZ)."
  }
}

variable "certificate_arn" {
  description = "ACM certificate in this region for the load balancer's TLS listener. It must cover the global name and this region's own name (see the root module's domain_name)."
  type        = string
}

variable "allowed_client_cidrs" {
  description = "CIDR blocks allowed to reach the load balancer on port 443 (build clients and the peer regions' NAT addresses)."
  type        = list(string)
}

variable "metrics_cidrs" {
  description = "CIDR blocks allowed to scrape the tasks' HTTP port (metrics and health); empty: none."
  type        = list(string)
  default     = []
}

variable "bucket_name" {
  description = "Name of this region's bucket. Peers are granted read access to it by name, so the root module derives it from name and region_name."
  type        = string
}

variable "peer_bucket_arns" {
  description = "ARNs of the other regions' buckets, for read_peer_buckets."
  type        = list(string)
  default     = []
}

variable "read_peer_buckets" {
  description = "Grant the task role s3:GetObject on the peer buckets. Tessera itself reads peers through their endpoints and does not need it; turn it on for tools that read a peer's bucket directly."
  type        = bool
  default     = false
}

variable "peers" {
  description = "The other regions, as TESSERA_PEERS lists them: name and endpoint (grpcs://host:port)."
  type = list(object({
    name     = string
    endpoint = string
  }))
  default = []

  validation {
    condition     = alltrue([for peer in var.peers : can(regex("^grpcs?://[^/:]+:[0-9]+$", peer.endpoint))])
    error_message = "every peer endpoint must look like grpcs://host:port."
  }
}

variable "peer_token" {
  description = "Bearer token this region presents to its peers and accepts from them: read permission, plus write and ac-write when replication is on. Kept in Secrets Manager; also stored in the Terraform state, which must be encrypted."
  type        = string
  sensitive   = true
  default     = ""
}

variable "client_tokens" {
  description = "Client tokens in TESSERA_AUTH_TOKENS form (TOKEN:PERMISSIONS[:INSTANCE_PATTERN], comma-separated). Kept in Secrets Manager."
  type        = string
  sensitive   = true
}

variable "peer_timeout_ms" {
  description = "TESSERA_PEER_TIMEOUT_MS: the longest a local miss waits for a peer region (for its answer, and for each gap in a read) before it is answered as a miss."
  type        = number
  default     = 1500
}

variable "replication" {
  description = "TESSERA_REPLICATION: \"on\" copies newly committed blobs to the peers asynchronously; \"off\" relies on read-through alone."
  type        = string
  default     = "off"

  validation {
    condition     = contains(["off", "on"], var.replication)
    error_message = "replication must be \"off\" or \"on\"."
  }
}

variable "cas_lease_seconds" {
  description = "TESSERA_CAS_LEASE_SECONDS: how long a commit entry lives in Redis after its last use. The bucket's expiry backstop must be longer (see object_expiry_days)."
  type        = number
  default     = 2592000

  validation {
    condition     = var.cas_lease_seconds > 0
    error_message = "cas_lease_seconds must be positive here: a lease of 0 keeps commits forever, which no expiry backstop could agree with."
  }
}

variable "object_expiry_days" {
  description = "Backstop: the bucket deletes objects older than this, counted from when they were written, whatever their lease. Must exceed the lease by at least a day; 0 turns the rule off. The collector (tessera gc, run by the service) is how objects normally go; see storage.tf for what the backstop costs."
  type        = number
  default     = 365
}

variable "gc_budget_bytes" {
  description = "TESSERA_GC_BUDGET_BYTES: the collector evicts least recently used blobs while the bucket holds more; 0: no budget, only expired leases are collected."
  type        = number
  default     = 0
}

variable "abort_incomplete_multipart_days" {
  description = "Days after which the bucket aborts a multipart upload that was never completed (a crashed or abandoned upload's parts)."
  type        = number
  default     = 1

  validation {
    condition     = var.abort_incomplete_multipart_days >= 1
    error_message = "abort_incomplete_multipart_days must be at least 1 (S3 counts whole days)."
  }
}

variable "redis_node_type" {
  description = "ElastiCache node type. Each committed blob takes about 330 bytes of Redis (its commit key and its lease entry, measured on Redis 7), action results a few hundred bytes more each: cache.r7g.large (13 GiB, about 10 GiB usable) holds some 30 million blobs."
  type        = string
  default     = "cache.r7g.large"
}

variable "redis_replicas" {
  description = "Read replicas beside the primary, spread over availability zones; at least 1 for automatic failover."
  type        = number
  default     = 1

  validation {
    condition     = var.redis_replicas >= 1 && var.redis_replicas <= 5
    error_message = "redis_replicas must be from 1 to 5: automatic failover needs a replica."
  }
}

variable "redis_auth_token" {
  description = "Password of this region's Redis (16 to 128 printable characters, no @, \" or /). Kept in Secrets Manager inside TESSERA_REDIS_URL."
  type        = string
  sensitive   = true

  validation {
    condition     = length(var.redis_auth_token) >= 16 && length(var.redis_auth_token) <= 128 && !can(regex("[@\"/ ]", var.redis_auth_token))
    error_message = "redis_auth_token must be 16 to 128 characters without @, \", / or spaces."
  }
}

variable "task_cpu" {
  description = "Fargate task CPU units (1024 = one vCPU)."
  type        = number
  default     = 2048
}

variable "task_memory" {
  description = "Fargate task memory in MiB."
  type        = number
  default     = 4096
}

variable "ephemeral_storage_gib" {
  description = "Fargate ephemeral storage (21 to 200 GiB). Uploads are spooled there before they reach S3 (TESSERA_STAGING_MAX_BYTES: 50% of it) and often-read blobs are kept there (TESSERA_READ_CACHE_BYTES: read_cache_percent of it)."
  type        = number
  default     = 100

  validation {
    condition     = var.ephemeral_storage_gib >= 21 && var.ephemeral_storage_gib <= 200
    error_message = "ephemeral_storage_gib must be from 21 to 200 (Fargate's limits)."
  }
}

variable "read_cache_percent" {
  description = "Share of the ephemeral storage given to the local read tier (0 to 30); 0 turns it off."
  type        = number
  default     = 30

  validation {
    condition     = var.read_cache_percent >= 0 && var.read_cache_percent <= 30
    error_message = "read_cache_percent must be from 0 to 30: staging takes half the storage and the image and logs need the rest."
  }
}

variable "min_tasks" {
  description = "Fewest tasks; keep at least 2 so that one availability zone can fail."
  type        = number
  default     = 2
}

variable "max_tasks" {
  description = "Most tasks the CPU target tracking may scale out to."
  type        = number
  default     = 10
}

variable "cpu_target_percent" {
  description = "Average task CPU the autoscaler aims for."
  type        = number
  default     = 60
}

variable "log_level" {
  description = "TESSERA_LOG_LEVEL."
  type        = string
  default     = "info"
}

variable "log_retention_days" {
  description = "How long CloudWatch keeps the service's logs."
  type        = number
  default     = 30
}

variable "tags" {
  description = "Tags added to every resource."
  type        = map(string)
  default     = {}
}
