output "endpoint" {
  description = "The cache's global endpoint: the nearest healthy region. Use it as Bazel's --remote_cache."
  value       = "grpcs://${var.domain_name}:443"
}

output "regions" {
  description = "Per region: its own endpoint, the peers it reads through from, its bucket, Redis and logs."
  value = {
    for name, region in local.deployed : name => {
      endpoint               = local.endpoints[name]
      load_balancer_endpoint = region.endpoint
      peers                  = [for peer in local.endpoints : peer if peer != local.endpoints[name]]
      bucket                 = region.bucket_name
      redis_primary_endpoint = region.redis_primary_endpoint
      log_group              = region.log_group
      service                = region.service_name
    }
  }
}
