# Two roles. The execution role is what ECS itself uses to pull the image, write logs and read this
# region's secret. The task role is what Tessera runs as: read, write and list its own bucket
# (multipart uploads included), nothing else. Tessera reads other regions through their endpoints
# (TESSERA_PEERS), which serve only committed, verified blobs, so it needs no access to their
# buckets; read_peer_buckets grants s3:GetObject on them for tools that read a peer's bucket
# directly. No bucket administration, no access to any other region's Redis or secrets.

data "aws_iam_policy_document" "ecs_tasks_assume" {
  statement {
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["ecs-tasks.amazonaws.com"]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [data.aws_caller_identity.current.account_id]
    }
  }
}

resource "aws_iam_role" "execution" {
  name               = "${local.prefix}-execution"
  assume_role_policy = data.aws_iam_policy_document.ecs_tasks_assume.json
  tags               = local.tags
}

resource "aws_iam_role_policy_attachment" "execution" {
  role       = aws_iam_role.execution.name
  policy_arn = "arn:${data.aws_partition.current.partition}:iam::aws:policy/service-role/AmazonECSTaskExecutionRolePolicy"
}

data "aws_iam_policy_document" "execution_secrets" {
  statement {
    sid       = "ReadThisRegionsSecret"
    actions   = ["secretsmanager:GetSecretValue"]
    resources = [aws_secretsmanager_secret.runtime.arn]
  }
}

resource "aws_iam_role_policy" "execution_secrets" {
  name   = "read-runtime-secret"
  role   = aws_iam_role.execution.id
  policy = data.aws_iam_policy_document.execution_secrets.json
}

resource "aws_iam_role" "task" {
  name               = "${local.prefix}-task"
  assume_role_policy = data.aws_iam_policy_document.ecs_tasks_assume.json
  tags               = local.tags
}

data "aws_iam_policy_document" "task" {
  statement {
    sid = "ListOwnBucket"
    actions = [
      "s3:ListBucket",
      "s3:ListBucketMultipartUploads",
    ]
    resources = [aws_s3_bucket.blobs.arn]
  }

  statement {
    sid = "ReadWriteOwnObjects"
    actions = [
      "s3:GetObject",
      "s3:PutObject",
      "s3:DeleteObject",
      "s3:AbortMultipartUpload",
      "s3:ListMultipartUploadParts",
    ]
    resources = ["${aws_s3_bucket.blobs.arn}/*"]
  }

  dynamic "statement" {
    for_each = var.read_peer_buckets && length(var.peer_bucket_arns) > 0 ? [1] : []

    content {
      sid       = "ReadPeerObjects"
      actions   = ["s3:GetObject"]
      resources = [for arn in var.peer_bucket_arns : "${arn}/*"]
    }
  }
}

resource "aws_iam_role_policy" "task" {
  name   = "tessera-storage"
  role   = aws_iam_role.task.id
  policy = data.aws_iam_policy_document.task.json
}
