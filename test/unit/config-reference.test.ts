// The README's configuration reference is generated from the schema; these tests keep it so.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import {
  configReferenceMarkdown,
  settingReferences,
  withConfigReference,
} from '../../src/config/reference.ts';
import { SETTING_NAMES } from '../../src/config/schema.ts';

const README = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');

describe('configuration reference', () => {
  it('describes every setting of the schema', () => {
    const references = settingReferences();
    assert.deepEqual(
      references.map((reference) => reference.name),
      SETTING_NAMES,
    );
    for (const reference of references) {
      assert.ok(reference.description.length >= 10, `${reference.name}: description too short`);
    }
  });

  it('is up to date in README.md (run npm run docs:config when this fails)', () => {
    assert.equal(withConfigReference(README), README);
  });

  it('is machine independent: no home or temp directory in defaults', () => {
    const table = configReferenceMarkdown();
    assert.ok(table.includes('`~/.local/share/tessera`'), table);
    assert.ok(!table.includes(process.env.HOME ?? '/nonexistent-home'));
  });

  it('shows units, ranges and enums derived from the schema', () => {
    const byName = new Map(settingReferences().map((reference) => [reference.name, reference]));
    assert.equal(byName.get('s3PartSizeBytes')?.allowed, '5 MiB to 5 GiB');
    assert.equal(byName.get('s3PartSizeBytes')?.defaultText, '8 MiB');
    assert.equal(byName.get('casLeaseSeconds')?.defaultText, '30 d');
    assert.equal(byName.get('verifyReads')?.allowed, '`never`, `always`');
    assert.equal(byName.get('authTokens')?.flag, undefined);
  });

  it('refuses a README without the markers', () => {
    assert.throws(() => withConfigReference('# no markers here\n'), /lacks the markers/);
  });
});
