# The region's bucket. Objects are written only by this region's tasks; peer regions may read them
# (their task roles are granted s3:GetObject on this bucket by name, in the same account).
#
# Lifecycle, and how it agrees with Tessera's leases:
# - A multipart upload never completed (a task killed mid-upload, an upload abandoned past
#   Tessera's own janitor) is aborted after abort_incomplete_multipart_days, releasing its parts.
#   Tessera never commits a blob whose upload is incomplete, so nothing served depends on them.
# - Objects are expired after object_expiry_days, counted from when the object was written. The
#   collector (tessera gc, run by the service every TESSERA_GC_INTERVAL_SECONDS) is what normally
#   deletes objects whose lease ran out, and orphans; this rule is the backstop for what it cannot
#   see, such as objects written before a Redis loss that `tessera reindex` has not yet adopted.
#   It must be longer than the lease: the precondition below refuses a plan where it is not (0
#   turns the rule off). S3 counts age from the write, not from the last use, so a blob still in
#   use past that age is deleted too: Tessera's next read of it finds the commit pointing at
#   nothing, drops the commit and answers NOT_FOUND, and the next build uploads it again. That
#   costs a miss, never a wrong answer, which is why the default (365 days) is far above the lease.

resource "aws_s3_bucket" "blobs" {
  bucket = var.bucket_name
  tags   = local.tags
}

resource "aws_s3_bucket_ownership_controls" "blobs" {
  bucket = aws_s3_bucket.blobs.id

  rule {
    object_ownership = "BucketOwnerEnforced"
  }
}

resource "aws_s3_bucket_public_access_block" "blobs" {
  bucket = aws_s3_bucket.blobs.id

  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

# SSE-S3 rather than a KMS key: peer regions read these objects, and S3-managed keys need no
# cross-region key grants or per-request KMS calls (which are billed and rate-limited).
resource "aws_s3_bucket_server_side_encryption_configuration" "blobs" {
  bucket = aws_s3_bucket.blobs.id

  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm = "AES256"
    }
  }
}

resource "aws_s3_bucket_lifecycle_configuration" "blobs" {
  bucket = aws_s3_bucket.blobs.id

  rule {
    id     = "abort-incomplete-multipart-uploads"
    status = "Enabled"

    filter {}

    abort_incomplete_multipart_upload {
      days_after_initiation = var.abort_incomplete_multipart_days
    }
  }

  rule {
    id     = "expire-objects-past-the-lease"
    status = var.object_expiry_days > 0 ? "Enabled" : "Disabled"

    filter {}

    expiration {
      # S3 wants a positive number of days even in a disabled rule.
      days = max(var.object_expiry_days, 1)
    }
  }

  lifecycle {
    precondition {
      condition     = var.object_expiry_days == 0 || var.object_expiry_days * 86400 >= var.cas_lease_seconds + 86400
      error_message = "object_expiry_days must exceed cas_lease_seconds by at least one day (or be 0, no expiry), or the bucket would delete objects whose commits are still leased."
    }
  }
}

data "aws_iam_policy_document" "bucket" {
  statement {
    sid       = "DenyInsecureTransport"
    effect    = "Deny"
    actions   = ["s3:*"]
    resources = [aws_s3_bucket.blobs.arn, "${aws_s3_bucket.blobs.arn}/*"]

    principals {
      type        = "*"
      identifiers = ["*"]
    }

    condition {
      test     = "Bool"
      variable = "aws:SecureTransport"
      values   = ["false"]
    }
  }
}

resource "aws_s3_bucket_policy" "blobs" {
  bucket = aws_s3_bucket.blobs.id
  policy = data.aws_iam_policy_document.bucket.json

  # Applying a bucket policy while the public access block is being created can fail.
  depends_on = [aws_s3_bucket_public_access_block.blobs]
}
