// The Terraform under terraform/, checked offline (see support/terraform-check.ts for how), and
// the deployment facts it must agree with: the settings the server reads, the lease the bucket's
// expiry backstop must outlast, gRPC health through the load balancer, readiness in DNS. The
// checks' negative cases are in terraform-catches.test.ts.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { before, describe, it } from 'node:test';
import { parse } from '@cdktf/hcl2json';
import { settingsSchema } from '../../src/config/schema.ts';
import { awsProviderVersion } from './support/aws-schema.ts';
import { KNOWN_ENV_NAMES } from './support/env-names.ts';
import { formattingProblems } from './support/hcl-format.ts';
import {
  checkModule,
  checkVariableFile,
  loadModule,
  type TerraformModule,
} from './support/terraform-check.ts';
import {
  EXAMPLE_VARS,
  REGION,
  ROOT,
  SECRET_VARIABLES,
  TERRAFORM,
} from './support/terraform-files.ts';

type Body = Record<string, unknown>;

/** How hcl2json renders an expression: wrapped in ${…}. */
const expression = (text: string): string => `\${${text}}`;

function variableDefault(module: TerraformModule, name: string): unknown {
  const variable = module.variables.find((candidate) => candidate.name === name);
  assert.ok(variable, `${module.dir} declares no variable ${name}`);
  return variable.body.default;
}

function onlyResource(module: TerraformModule, type: string, name?: string): Body {
  const found = module.resources.filter(
    (resource) => resource.type === type && (name === undefined || resource.name === name),
  );
  const what = name === undefined ? type : `${type}.${name}`;
  assert.equal(found.length, 1, `expected one ${what} in ${module.dir}, found ${found.length}`);
  return (found[0] as { body: Body }).body;
}

/** Copies terraform/ to a scratch directory, applies `edit` to one file, returns the copy. */
let region: TerraformModule;
let root: TerraformModule;

describe('terraform', () => {
  before(async () => {
    region = await loadModule(REGION);
    root = await loadModule(TERRAFORM);
  });

  it('parses, and every file is in canonical format', async () => {
    const files = new Map([...region.files, ...root.files]);
    files.set(EXAMPLE_VARS, readFileSync(EXAMPLE_VARS, 'utf8'));
    await parse(EXAMPLE_VARS, files.get(EXAMPLE_VARS) as string);

    assert.deepEqual(await formattingProblems(files), []);
  });

  it(`uses only resource types, data sources and arguments of AWS provider ${awsProviderVersion()}, wired consistently`, async () => {
    assert.ok(region.resources.length >= 30, 'the region module looks empty');

    assert.deepEqual(await checkModule(region, ROOT), []);
    assert.deepEqual(await checkModule(root, ROOT), []);
  });

  it('has a two-region example that sets only, and all, the variables the root needs', async () => {
    assert.deepEqual(await checkVariableFile(EXAMPLE_VARS, root, SECRET_VARIABLES), []);

    const values = (await parse(EXAMPLE_VARS, readFileSync(EXAMPLE_VARS, 'utf8'))) as Body;
    assert.equal((values.regions as unknown[]).length, 2);
    for (const name of SECRET_VARIABLES) {
      const variable = root.variables.find((candidate) => candidate.name === name);
      assert.equal(variable?.body.sensitive, true, `${name} must be a sensitive variable`);
    }
  });

  it('gives the containers only TESSERA_* variables the server reads', () => {
    const text = [...region.files.values()].join('\n');
    const names = new Set(text.match(/\bTESSERA_[A-Z0-9_]+/g) ?? []);
    assert.ok(names.has('TESSERA_S3_BUCKET') && names.has('TESSERA_REDIS_URL'));
    for (const name of names) {
      assert.ok(KNOWN_ENV_NAMES.has(name), `terraform/ sets ${name}, which no setting reads`);
    }
  });

  it('expires objects only after the lease the server is given, and aborts stale multipart uploads', () => {
    const leaseSeconds = settingsSchema.parse({}).casLeaseSeconds;
    for (const module of [region, root]) {
      assert.equal(variableDefault(module, 'cas_lease_seconds'), leaseSeconds);
      const expiryDays = variableDefault(module, 'object_expiry_days') as number;
      assert.ok(
        expiryDays * 86_400 >= leaseSeconds + 86_400,
        `${module.dir}: object_expiry_days ${expiryDays} does not outlast the lease of ${leaseSeconds} s by a day`,
      );
    }
    const abortDays = variableDefault(region, 'abort_incomplete_multipart_days') as number;
    assert.ok(abortDays >= 1 && abortDays <= 2, `aborts multipart uploads after ${abortDays} days`);

    const lifecycle = onlyResource(region, 'aws_s3_bucket_lifecycle_configuration');
    const rules = lifecycle.rule as Body[];
    const abort = rules.find((rule) => 'abort_incomplete_multipart_upload' in rule);
    const expire = rules.find((rule) => 'expiration' in rule);
    assert.deepEqual(abort?.abort_incomplete_multipart_upload, [
      { days_after_initiation: expression('var.abort_incomplete_multipart_days') },
    ]);
    assert.deepEqual(expire?.expiration, [{ days: expression('max(var.object_expiry_days, 1)') }]);
    const [{ precondition }] = lifecycle.lifecycle as [{ precondition: Body[] }];
    assert.match(
      String(precondition[0]?.condition),
      /var\.object_expiry_days == 0 \|\| var\.object_expiry_days \* 86400 >= var\.cas_lease_seconds \+ 86400/,
    );

    const service = region.files.get(join(REGION, 'service.tf')) as string;
    assert.match(service, /TESSERA_CAS_LEASE_SECONDS\s*= tostring\(var\.cas_lease_seconds\)/);
  });

  it('keeps the bucket private and encrypted', () => {
    const block = onlyResource(region, 'aws_s3_bucket_public_access_block');
    for (const flag of [
      'block_public_acls',
      'block_public_policy',
      'ignore_public_acls',
      'restrict_public_buckets',
    ]) {
      assert.equal(block[flag], true, `${flag} is not true`);
    }
    const encryption = onlyResource(region, 'aws_s3_bucket_server_side_encryption_configuration');
    assert.match(JSON.stringify(encryption), /"sse_algorithm":"AES256"/);
  });

  it('carries gRPC over TLS and checks task health with grpc.health.v1', () => {
    const group = onlyResource(region, 'aws_lb_target_group', 'grpc');
    assert.equal(group.protocol_version, 'GRPC');
    const [health] = group.health_check as [Body];
    assert.equal(health.path, '/grpc.health.v1.Health/Check');
    assert.equal(health.matcher, '0');

    const listener = onlyResource(region, 'aws_lb_listener');
    assert.equal(listener.protocol, 'HTTPS');
    assert.equal(listener.certificate_arn, expression('var.certificate_arn'));
  });

  it('withdraws a region from latency DNS while none of its tasks is ready', () => {
    const readiness = onlyResource(region, 'aws_lb_target_group', 'readiness');
    assert.equal(readiness.port, expression('local.http_port'));
    const [health] = readiness.health_check as [Body];
    assert.equal(health.path, '/readyz');
    assert.equal(health.matcher, '200');

    const service = onlyResource(region, 'aws_ecs_service');
    const groups = (service.load_balancer as Body[]).map((block) => block.target_group_arn);
    assert.deepEqual(groups, [
      expression('aws_lb_target_group.grpc.arn'),
      expression('aws_lb_target_group.readiness.arn'),
    ]);

    const alarm = onlyResource(region, 'aws_cloudwatch_metric_alarm');
    assert.equal(alarm.metric_name, 'HealthyHostCount');
    assert.match(JSON.stringify(alarm.dimensions), /aws_lb_target_group\.readiness\.arn_suffix/);
    const check = onlyResource(region, 'aws_route53_health_check');
    assert.equal(
      check.cloudwatch_alarm_name,
      expression('aws_cloudwatch_metric_alarm.not_ready.alarm_name'),
    );

    const dns = root.resources.find((resource) => resource.name === 'latency')?.body;
    assert.equal(dns?.health_check_id, expression('each.value.health_check_id'));
  });

  it('runs Redis with automatic failover, Multi-AZ, TLS and snapshots', () => {
    const redis = onlyResource(region, 'aws_elasticache_replication_group');
    assert.equal(redis.automatic_failover_enabled, true);
    assert.equal(redis.multi_az_enabled, true);
    assert.equal(redis.transit_encryption_enabled, true);
    assert.ok((redis.snapshot_retention_limit as number) > 0);
    assert.match(readFileSync(join(REGION, 'service.tf'), 'utf8'), /"rediss:\/\//);
  });

  it('gives every region the other regions as peers, and bucket reads only when asked', () => {
    const main = root.files.get(join(TERRAFORM, 'main.tf')) as string;
    const calls = root.modules.filter((call) => call.name.startsWith('region_slot'));
    assert.equal(calls.length, root.providers.filter((provider) => provider.body.alias).length);
    calls.forEach((call, slot) => {
      assert.equal(call.body.peers, `\${local.slot_peers[${slot}]}`);
      assert.equal(call.body.peer_bucket_arns, `\${local.slot_peer_bucket_arns[${slot}]}`);
      assert.deepEqual(call.body.providers, { aws: `\${aws.slot${slot}}` });
    });
    assert.match(main, /if region\.name != slot\.name/);

    const policy = region.data.find((source) => source.name === 'task')?.body as Body;
    const [peerRead] = (policy.dynamic as { statement: Body[] }).statement;
    assert.equal(
      peerRead?.for_each,
      expression('var.read_peer_buckets && length(var.peer_bucket_arns) > 0 ? [1] : []'),
    );
    assert.ok(peerRead, 'the task policy has no dynamic statement for peer buckets');
    assert.deepEqual((peerRead.content as Body[])[0]?.actions, ['s3:GetObject']);
  });

  it('lets peers only read, unless replication has them push', () => {
    const service = region.files.get(join(REGION, 'service.tf')) as string;
    assert.match(
      service,
      /peer_permissions = var\.replication == "on" \? "read\+write\+ac-write" : "read"/,
    );
  });

  it('keeps Redis from evicting the keys that make garbage collection safe', () => {
    const group = onlyResource(region, 'aws_elasticache_parameter_group');
    assert.deepEqual(group.parameter, [{ name: 'maxmemory-policy', value: 'noeviction' }]);
  });
});
