output "endpoint" {
  description = "This region's own gRPC endpoint, by load balancer name (grpcs://host:443). The root module publishes a DNS name for it."
  value       = "grpcs://${aws_lb.grpc.dns_name}:443"
}

output "load_balancer_dns_name" {
  description = "DNS name of the load balancer, for alias records."
  value       = aws_lb.grpc.dns_name
}

output "load_balancer_zone_id" {
  description = "Hosted zone of the load balancer, for alias records."
  value       = aws_lb.grpc.zone_id
}

output "bucket_name" {
  description = "This region's bucket."
  value       = aws_s3_bucket.blobs.bucket
}

output "bucket_arn" {
  description = "ARN of this region's bucket."
  value       = aws_s3_bucket.blobs.arn
}

output "redis_primary_endpoint" {
  description = "Primary endpoint of this region's Redis (TLS, port 6379)."
  value       = aws_elasticache_replication_group.commits.primary_endpoint_address
}

output "log_group" {
  description = "CloudWatch log group of the service."
  value       = aws_cloudwatch_log_group.service.name
}

output "service_name" {
  description = "ECS cluster and service, as cluster/service."
  value       = "${aws_ecs_cluster.this.name}/${aws_ecs_service.tessera.name}"
}

output "health_check_id" {
  description = "Route 53 health check that fails while no task in this region is ready."
  value       = aws_route53_health_check.ready.id
}
