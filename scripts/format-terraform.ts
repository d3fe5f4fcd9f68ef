// Rewrites every .tf and .tfvars file under terraform/ in canonical HCL format, with the same
// formatter the CI check uses (hclwrite.Format through @cdktf/hcl-tools). Use it where no
// terraform binary is at hand; where one is, `terraform fmt -recursive terraform` agrees.
//
//   npm run format:terraform
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { format } from '@cdktf/hcl-tools';

const ROOT = new URL('../terraform/', import.meta.url).pathname;

function* hclFiles(dir: string): Generator<string> {
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory() && !entry.name.startsWith('.')) yield* hclFiles(path);
    else if (/\.(tf|tfvars)$/.test(entry.name)) yield path;
  }
}

for (const file of hclFiles(ROOT)) {
  const text = readFileSync(file, 'utf8');
  const formatted = await format(text);
  if (formatted !== text) {
    writeFileSync(file, formatted);
    process.stdout.write(`formatted ${file}\n`);
  }
}
