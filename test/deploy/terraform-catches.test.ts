// Each offline Terraform check, shown to fail: a copy of the real terraform/ broken one way per
// case, and the problem the check must report.
import assert from 'node:assert/strict';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { formattingProblems } from './support/hcl-format.ts';
import {
  checkModule,
  checkVariableFile,
  loadModule,
  type TerraformModule,
} from './support/terraform-check.ts';
import { SECRET_VARIABLES, TERRAFORM } from './support/terraform-files.ts';

/** How hcl2json renders an expression: wrapped in ${…}. */
const expression = (text: string): string => `\${${text}}`;

const scratch: string[] = [];
let root: TerraformModule;

function brokenCopy(file: string, edit: (text: string) => string): string {
  const dir = mkdtempSync(join(tmpdir(), 'tessera-terraform-'));
  scratch.push(dir);
  cpSync(TERRAFORM, dir, { recursive: true });
  const path = join(dir, file);
  const original = readFileSync(path, 'utf8');
  const broken = edit(original);
  assert.notEqual(broken, original, `the edit did not change ${file}`);
  writeFileSync(path, broken);
  return dir;
}

async function problemsOfCopy(dir: string, module: 'root' | 'region'): Promise<string[]> {
  const loaded = await loadModule(module === 'root' ? dir : join(dir, 'modules', 'region'));
  return checkModule(loaded, dir);
}

describe('the terraform checks catch', () => {
  before(async () => {
    root = await loadModule(TERRAFORM);
  });
  after(() => {
    for (const dir of scratch) rmSync(dir, { recursive: true, force: true });
  });

  const cases: [string, 'root' | 'region', string, (text: string) => string, RegExp][] = [
    [
      'a misspelled argument',
      'region',
      'modules/region/storage.tf',
      (text) => text.replace('block_public_acls       = true', 'block_public_acl        = true'),
      /aws_s3_bucket_public_access_block\.blobs: unknown argument "block_public_acl" \(did you mean "block_public_acls"\?\)/,
    ],
    [
      'a misspelled argument in a nested block',
      'region',
      'modules/region/load-balancer.tf',
      (text) => text.replace('unhealthy_threshold = 3', 'unhealty_threshold  = 3'),
      /aws_lb_target_group\.grpc\.health_check: unknown argument "unhealty_threshold"/,
    ],
    [
      'a resource type the provider does not have',
      'region',
      'modules/region/redis.tf',
      (text) => text.replace('"aws_elasticache_subnet_group"', '"aws_elasticache_subnet_groups"'),
      /the AWS provider has no resource type aws_elasticache_subnet_groups \(did you mean "aws_elasticache_subnet_group"\?\)/,
    ],
    [
      'a data source the provider does not have',
      'region',
      'modules/region/main.tf',
      (text) => text.replace('data "aws_partition"', 'data "aws_partitions"'),
      /has no data source aws_partitions/,
    ],
    [
      'a missing required argument',
      'region',
      'modules/region/redis.tf',
      (text) => text.replace(/\n {2}description {10}= "Tessera commit index[^\n]*/, ''),
      /aws_elasticache_replication_group\.commits: missing required argument "description"/,
    ],
    [
      'a block written as an attribute',
      'region',
      'modules/region/service.tf',
      (text) =>
        text.replace(
          'ephemeral_storage {\n    size_in_gib = var.ephemeral_storage_gib\n  }',
          'ephemeral_storage = { size_in_gib = var.ephemeral_storage_gib }',
        ),
      /"ephemeral_storage" is a block; write it as ephemeral_storage \{ … \}/,
    ],
    [
      'a single block given twice',
      'region',
      'modules/region/service.tf',
      (text) =>
        text.replace(
          '  runtime_platform {',
          '  ephemeral_storage {\n    size_in_gib = 30\n  }\n\n  runtime_platform {',
        ),
      /block "ephemeral_storage" may appear only once, found 2/,
    ],
    [
      'a module argument the module does not declare',
      'root',
      'main.tf',
      (text) =>
        text.replace(
          '  peer_timeout_ms      = var.peer_timeout_ms\n',
          '  peer_timeout        = var.peer_timeout_ms\n',
        ),
      /module "region_slot0" passes "peer_timeout", which \.\/modules\/region does not declare \(did you mean "peer_timeout_ms"\?\)/,
    ],
    [
      'a module call that leaves out a required variable',
      'root',
      'main.tf',
      (text) => text.replace('  certificate_arn      = local.slots[1].certificate_arn\n', ''),
      /module "region_slot1" does not pass required variable "certificate_arn"/,
    ],
    [
      'a reference to a variable nobody declared',
      'region',
      'modules/region/redis.tf',
      (text) => text.replace('var.redis_node_type', 'var.redis_node_size'),
      /no variable "redis_node_size" \(did you mean "redis_node_type"\?\)/,
    ],
    [
      'a reference to a module output that does not exist',
      'root',
      'dns.tf',
      (text) =>
        text.replace('each.value.load_balancer_zone_id', 'module.region_slot0[0].alb_zone_id'),
      /module "region_slot0" has no output "alb_zone_id"/,
    ],
    [
      'a reference to a resource that does not exist',
      'region',
      'modules/region/outputs.tf',
      (text) => text.replace('aws_lb.grpc.dns_name}', 'aws_lb.grpcs.dns_name}'),
      /no resource aws_lb\.grpcs/,
    ],
    [
      'a variable declared and never used',
      'region',
      'modules/region/variables.tf',
      (text) => `${text}\nvariable "unused" {\n  type    = string\n  default = ""\n}\n`,
      /variable "unused" is declared but never used/,
    ],
    [
      'an argument the provider block does not have',
      'root',
      'main.tf',
      (text) => text.replace('alias  = "slot3"\n  region =', 'alias  = "slot3"\n  regoin ='),
      /provider "aws": unknown argument "regoin"/,
    ],
  ];
  for (const [what, module, file, edit, expected] of cases) {
    it(what, async () => {
      const problems = await problemsOfCopy(brokenCopy(file, edit), module);
      assert.ok(
        problems.some((problem) => expected.test(problem)),
        `expected a problem matching ${expected}, got:\n${problems.join('\n')}`,
      );
    });
  }

  it('a file out of canonical format', async () => {
    const dir = brokenCopy('modules/region/redis.tf', (text) =>
      text.replace('  port                 = 6379', '  port = 6379'),
    );
    const file = join(dir, 'modules', 'region', 'redis.tf');
    const problems = await formattingProblems(new Map([[file, readFileSync(file, 'utf8')]]));
    assert.equal(problems.length, 1);
    assert.match(
      problems[0] as string,
      /redis\.tf:\d+: not in canonical format; expected "port {17}= 6379"/,
    );
  });

  it('an interpolation-only string, which terraform fmt would rewrite', async () => {
    const dir = brokenCopy('modules/region/redis.tf', (text) =>
      text.replace(
        'node_type            = var.redis_node_type',
        `node_type            = "${expression('var.redis_node_type')}"`,
      ),
    );
    const file = join(dir, 'modules', 'region', 'redis.tf');
    const problems = await formattingProblems(new Map([[file, readFileSync(file, 'utf8')]]));
    assert.ok(
      problems.some((problem) => /interpolation-only string/.test(problem)),
      problems.join('\n'),
    );
  });

  it('a syntax error', async () => {
    const dir = brokenCopy('modules/region/redis.tf', (text) =>
      text.replace('port                 = 6379', 'port                 ='),
    );
    await assert.rejects(
      loadModule(join(dir, 'modules', 'region')),
      /redis\.tf:\d+,\d+-\d+(,\d+)?: .*expression/i,
    );
  });

  it('a tfvars file that sets a variable the root does not declare', async () => {
    const dir = brokenCopy('examples/two-regions/two-regions.tfvars', (text) =>
      text.replace('peer_timeout_ms = 1500', 'peer_timeout = 1500'),
    );
    const problems = await checkVariableFile(
      join(dir, 'examples', 'two-regions', 'two-regions.tfvars'),
      root,
      SECRET_VARIABLES,
    );
    assert.ok(
      problems.some((problem) =>
        /sets "peer_timeout", which the module does not declare/.test(problem),
      ),
      problems.join('\n'),
    );
  });
});
