// Writes the configuration reference (generated from src/config/schema.ts) into README.md.
//   npm run docs:config            rewrite the README's table
//   npm run docs:config -- --check exit 1 when the README's table is stale
import { readFileSync, writeFileSync } from 'node:fs';
import { withConfigReference } from '../src/config/reference.ts';

const readmePath = new URL('../README.md', import.meta.url);
const current = readFileSync(readmePath, 'utf8');
const wanted = withConfigReference(current);
if (process.argv.includes('--check')) {
  if (current !== wanted) {
    process.stderr.write(
      'README.md: the configuration reference is stale; run npm run docs:config\n',
    );
    process.exitCode = 1;
  }
} else if (current !== wanted) {
  writeFileSync(readmePath, wanted);
  process.stdout.write('README.md: configuration reference updated\n');
}
