variable "name" {
  description = "Deployment name, a prefix for every resource name and bucket."
  type        = string
}

variable "domain_name" {
  description = "The cache's DNS name, e.g. cache.example.com: a latency-based record sends each client to the nearest healthy region; each region also gets <region name>.<domain_name>."
  type        = string
}

variable "zone_id" {
  description = "Route 53 hosted zone that holds domain_name."
  type        = string
}

variable "image" {
  description = "Container image built from infra/Dockerfile, pushed where every region can pull it."
  type        = string
}

variable "regions" {
  description = "The regions, one to four. name is Tessera's name for the region (TESSERA_REGION); aws_region where it runs; the certificate must cover domain_name and <name>.<domain_name>."
  type = list(object({
    name               = string
    aws_region         = string
    vpc_id             = string
    public_subnet_ids  = list(string)
    private_subnet_ids = list(string)
    certificate_arn    = string
    min_tasks          = optional(number, 2)
    max_tasks          = optional(number, 10)
    redis_node_type    = optional(string, "cache.r7g.large")
  }))

  validation {
    condition     = length(var.regions) >= 1 && length(var.regions) <= 4
    error_message = "regions must list one to four regions (the root module has four provider slots; see README of terraform/)."
  }

  validation {
    condition     = length(distinct([for region in var.regions : region.name])) == length(var.regions)
    error_message = "every region needs its own name."
  }
}

variable "allowed_client_cidrs" {
  description = "CIDR blocks allowed to reach every region's endpoint: build clients, plus every region's NAT addresses so that peers can read through."
  type        = list(string)
}

variable "metrics_cidrs" {
  description = "CIDR blocks allowed to scrape the tasks' metrics port."
  type        = list(string)
  default     = []
}

variable "client_tokens" {
  description = "Client tokens every region accepts, in TESSERA_AUTH_TOKENS form."
  type        = string
  sensitive   = true
}

variable "peer_token" {
  description = "Token the regions use with each other: read, plus write and ac-write when replication is on."
  type        = string
  sensitive   = true
}

variable "redis_auth_token" {
  description = "Password of every region's Redis."
  type        = string
  sensitive   = true
}

variable "replication" {
  description = "TESSERA_REPLICATION in every region: \"off\" (read-through only) or \"on\"."
  type        = string
  default     = "off"
}

variable "peer_timeout_ms" {
  description = "TESSERA_PEER_TIMEOUT_MS in every region."
  type        = number
  default     = 1500
}

variable "read_peer_buckets" {
  description = "Grant each region's task role read access to the other regions' buckets (Tessera does not need it)."
  type        = bool
  default     = false
}

variable "cas_lease_seconds" {
  description = "TESSERA_CAS_LEASE_SECONDS in every region."
  type        = number
  default     = 2592000
}

variable "object_expiry_days" {
  description = "Bucket lifecycle backstop in every region; must exceed the lease by a day; 0: off."
  type        = number
  default     = 365
}

variable "gc_budget_bytes" {
  description = "TESSERA_GC_BUDGET_BYTES in every region; 0: no budget."
  type        = number
  default     = 0
}

variable "tags" {
  description = "Tags added to every resource."
  type        = map(string)
  default     = {}
}
