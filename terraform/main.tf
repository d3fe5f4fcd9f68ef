# Tessera in one to four regions, from the list in var.regions.
#
# Terraform cannot create provider configurations with for_each or pass a provider chosen by an
# expression, and every AWS provider configuration is bound to one region. So this root declares
# four provider slots (aws.slot0 .. aws.slot3) whose regions come from the list, and four module
# calls, each switched on by count when the list is long enough. A slot the list does not reach
# points at the first region and has no resources. Supporting a fifth region means adding one
# provider block and one module block, and a fifth entry to local.region_modules.
#
# Each region gets the other regions as peers, by their regional DNS names (and, with
# read_peer_buckets, read access to their buckets). Bucket names are derived from names alone, so
# no region waits on another's outputs and there is no dependency cycle.

locals {
  slot_count = 4

  # Pads the list to four entries with the first region so that every slot has a region.
  slots = [for index in range(local.slot_count) : var.regions[index < length(var.regions) ? index : 0]]

  bucket_names = { for region in var.regions : region.name => "${var.name}-cas-${region.name}" }

  endpoints = {
    for region in var.regions : region.name => "grpcs://${region.name}.${var.domain_name}:443"
  }

  # Per slot: the other regions, as TESSERA_PEERS lists them, and their buckets.
  slot_peers = [
    for slot in local.slots : [
      for region in var.regions : { name = region.name, endpoint = local.endpoints[region.name] }
      if region.name != slot.name
    ]
  ]
  slot_peer_bucket_arns = [
    for slot in local.slots : [
      for region in var.regions : "arn:${data.aws_partition.current.partition}:s3:::${local.bucket_names[region.name]}"
      if region.name != slot.name
    ]
  ]
}

# Route 53 is global; its records are created through the first region's provider.
provider "aws" {
  region = local.slots[0].aws_region
}

data "aws_partition" "current" {}

provider "aws" {
  alias  = "slot0"
  region = local.slots[0].aws_region
}

provider "aws" {
  alias  = "slot1"
  region = local.slots[1].aws_region
}

provider "aws" {
  alias  = "slot2"
  region = local.slots[2].aws_region
}

provider "aws" {
  alias  = "slot3"
  region = local.slots[3].aws_region
}

module "region_slot0" {
  source    = "./modules/region"
  count     = length(var.regions) > 0 ? 1 : 0
  providers = { aws = aws.slot0 }

  name                 = var.name
  region_name          = local.slots[0].name
  aws_region           = local.slots[0].aws_region
  image                = var.image
  vpc_id               = local.slots[0].vpc_id
  public_subnet_ids    = local.slots[0].public_subnet_ids
  private_subnet_ids   = local.slots[0].private_subnet_ids
  certificate_arn      = local.slots[0].certificate_arn
  allowed_client_cidrs = var.allowed_client_cidrs
  metrics_cidrs        = var.metrics_cidrs
  bucket_name          = local.bucket_names[local.slots[0].name]
  read_peer_buckets    = var.read_peer_buckets
  peer_bucket_arns     = local.slot_peer_bucket_arns[0]
  peers                = local.slot_peers[0]
  peer_token           = var.peer_token
  client_tokens        = var.client_tokens
  peer_timeout_ms      = var.peer_timeout_ms
  replication          = var.replication
  cas_lease_seconds    = var.cas_lease_seconds
  object_expiry_days   = var.object_expiry_days
  gc_budget_bytes      = var.gc_budget_bytes
  redis_node_type      = local.slots[0].redis_node_type
  redis_auth_token     = var.redis_auth_token
  min_tasks            = local.slots[0].min_tasks
  max_tasks            = local.slots[0].max_tasks
  tags                 = var.tags
}

module "region_slot1" {
  source    = "./modules/region"
  count     = length(var.regions) > 1 ? 1 : 0
  providers = { aws = aws.slot1 }

  name                 = var.name
  region_name          = local.slots[1].name
  aws_region           = local.slots[1].aws_region
  image                = var.image
  vpc_id               = local.slots[1].vpc_id
  public_subnet_ids    = local.slots[1].public_subnet_ids
  private_subnet_ids   = local.slots[1].private_subnet_ids
  certificate_arn      = local.slots[1].certificate_arn
  allowed_client_cidrs = var.allowed_client_cidrs
  metrics_cidrs        = var.metrics_cidrs
  bucket_name          = local.bucket_names[local.slots[1].name]
  read_peer_buckets    = var.read_peer_buckets
  peer_bucket_arns     = local.slot_peer_bucket_arns[1]
  peers                = local.slot_peers[1]
  peer_token           = var.peer_token
  client_tokens        = var.client_tokens
  peer_timeout_ms      = var.peer_timeout_ms
  replication          = var.replication
  cas_lease_seconds    = var.cas_lease_seconds
  object_expiry_days   = var.object_expiry_days
  gc_budget_bytes      = var.gc_budget_bytes
  redis_node_type      = local.slots[1].redis_node_type
  redis_auth_token     = var.redis_auth_token
  min_tasks            = local.slots[1].min_tasks
  max_tasks            = local.slots[1].max_tasks
  tags                 = var.tags
}

module "region_slot2" {
  source    = "./modules/region"
  count     = length(var.regions) > 2 ? 1 : 0
  providers = { aws = aws.slot2 }

  name                 = var.name
  region_name          = local.slots[2].name
  aws_region           = local.slots[2].aws_region
  image                = var.image
  vpc_id               = local.slots[2].vpc_id
  public_subnet_ids    = local.slots[2].public_subnet_ids
  private_subnet_ids   = local.slots[2].private_subnet_ids
  certificate_arn      = local.slots[2].certificate_arn
  allowed_client_cidrs = var.allowed_client_cidrs
  metrics_cidrs        = var.metrics_cidrs
  bucket_name          = local.bucket_names[local.slots[2].name]
  read_peer_buckets    = var.read_peer_buckets
  peer_bucket_arns     = local.slot_peer_bucket_arns[2]
  peers                = local.slot_peers[2]
  peer_token           = var.peer_token
  client_tokens        = var.client_tokens
  peer_timeout_ms      = var.peer_timeout_ms
  replication          = var.replication
  cas_lease_seconds    = var.cas_lease_seconds
  object_expiry_days   = var.object_expiry_days
  gc_budget_bytes      = var.gc_budget_bytes
  redis_node_type      = local.slots[2].redis_node_type
  redis_auth_token     = var.redis_auth_token
  min_tasks            = local.slots[2].min_tasks
  max_tasks            = local.slots[2].max_tasks
  tags                 = var.tags
}

module "region_slot3" {
  source    = "./modules/region"
  count     = length(var.regions) > 3 ? 1 : 0
  providers = { aws = aws.slot3 }

  name                 = var.name
  region_name          = local.slots[3].name
  aws_region           = local.slots[3].aws_region
  image                = var.image
  vpc_id               = local.slots[3].vpc_id
  public_subnet_ids    = local.slots[3].public_subnet_ids
  private_subnet_ids   = local.slots[3].private_subnet_ids
  certificate_arn      = local.slots[3].certificate_arn
  allowed_client_cidrs = var.allowed_client_cidrs
  metrics_cidrs        = var.metrics_cidrs
  bucket_name          = local.bucket_names[local.slots[3].name]
  read_peer_buckets    = var.read_peer_buckets
  peer_bucket_arns     = local.slot_peer_bucket_arns[3]
  peers                = local.slot_peers[3]
  peer_token           = var.peer_token
  client_tokens        = var.client_tokens
  peer_timeout_ms      = var.peer_timeout_ms
  replication          = var.replication
  cas_lease_seconds    = var.cas_lease_seconds
  object_expiry_days   = var.object_expiry_days
  gc_budget_bytes      = var.gc_budget_bytes
  redis_node_type      = local.slots[3].redis_node_type
  redis_auth_token     = var.redis_auth_token
  min_tasks            = local.slots[3].min_tasks
  max_tasks            = local.slots[3].max_tasks
  tags                 = var.tags
}

locals {
  # The deployed regions, in list order, whatever slot each used.
  region_modules = slice(concat(
    module.region_slot0,
    module.region_slot1,
    module.region_slot2,
    module.region_slot3,
  ), 0, length(var.regions))

  deployed = { for index, region in var.regions : region.name => local.region_modules[index] }
}
