terraform {
  # 1.5: check blocks and preconditions with cross-variable conditions.
  required_version = ">= 1.5.0"

  required_providers {
    aws = {
      source = "hashicorp/aws"
      # 6.x: the CI check validates arguments against the 6.x schema (@cdktf/provider-aws 21).
      version = ">= 6.0, < 7.0"
    }
  }
}
