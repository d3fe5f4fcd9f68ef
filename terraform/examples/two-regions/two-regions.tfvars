# Two regions, Europe and North America, each with its own bucket, Redis and service; each reads
# through from the other. Apply from the terraform/ directory:
#
#   export TF_VAR_client_tokens='...' TF_VAR_peer_token='...' TF_VAR_redis_auth_token='...'
#   terraform -chdir=terraform init
#   terraform -chdir=terraform apply -var-file=examples/two-regions/two-regions.tfvars
#
# The three secrets come from the environment (TF_VAR_*) so they are not written into this file.
# The VPC, subnet and certificate IDs below are placeholders: use your own. docs/DEPLOYMENT.md
# walks through every step.

name        = "tessera"
domain_name = "cache.example.com"
zone_id     = "Z0123456789EXAMPLE"
image       = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/tessera:0.1.0"

regions = [
  {
    name               = "eu-west-1"
    aws_region         = "eu-west-1"
    vpc_id             = "vpc-0aaaaaaaaaaaaaaaa"
    public_subnet_ids  = ["subnet-0aaaaaaaaaaaaaaa1", "subnet-0aaaaaaaaaaaaaaa2"]
    private_subnet_ids = ["subnet-0aaaaaaaaaaaaaaa3", "subnet-0aaaaaaaaaaaaaaa4"]
    certificate_arn    = "arn:aws:acm:eu-west-1:123456789012:certificate/00000000-0000-0000-0000-00000000000a"
  },
  {
    name               = "us-east-1"
    aws_region         = "us-east-1"
    vpc_id             = "vpc-0bbbbbbbbbbbbbbbb"
    public_subnet_ids  = ["subnet-0bbbbbbbbbbbbbbb1", "subnet-0bbbbbbbbbbbbbbb2"]
    private_subnet_ids = ["subnet-0bbbbbbbbbbbbbbb3", "subnet-0bbbbbbbbbbbbbbb4"]
    certificate_arn    = "arn:aws:acm:us-east-1:123456789012:certificate/00000000-0000-0000-0000-00000000000b"
    min_tasks          = 3
    max_tasks          = 20
  },
]

# Build clients' networks, plus both regions' NAT gateway addresses (peers read through over the
# public endpoints).
allowed_client_cidrs = ["203.0.113.0/24", "198.51.100.10/32", "198.51.100.20/32"]
metrics_cidrs        = ["10.0.0.0/8"]

replication     = "off"
peer_timeout_ms = 1500

tags = {
  service = "tessera"
}
