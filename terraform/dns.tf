# Two records per region, both aliases of its load balancer:
# - <region>.<domain_name>: this region only. Peers use it, so read-through goes where it means to.
# - <domain_name>, latency-based: Route 53 answers with the region of lowest latency to the
#   client's resolver among those whose readiness health check passes (some task there reaches
#   its bucket and Redis) and whose load balancer has live targets (evaluate_target_health).

resource "aws_route53_record" "regional" {
  for_each = local.deployed

  zone_id = var.zone_id
  name    = "${each.key}.${var.domain_name}"
  type    = "A"

  alias {
    name                   = each.value.load_balancer_dns_name
    zone_id                = each.value.load_balancer_zone_id
    evaluate_target_health = true
  }
}

resource "aws_route53_record" "latency" {
  for_each = local.deployed

  zone_id         = var.zone_id
  name            = var.domain_name
  type            = "A"
  set_identifier  = each.key
  health_check_id = each.value.health_check_id

  latency_routing_policy {
    region = one([for region in var.regions : region.aws_region if region.name == each.key])
  }

  alias {
    name                   = each.value.load_balancer_dns_name
    zone_id                = each.value.load_balancer_zone_id
    evaluate_target_health = true
  }
}
