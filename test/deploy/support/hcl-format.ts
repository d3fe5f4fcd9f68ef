// The formatting half of the offline Terraform check: each file must equal its hclwrite.Format
// output (@cdktf/hcl-tools, the formatter `terraform fmt` is built on) and hold no
// interpolation-only string, which `terraform fmt` rewrites on top of that. Quoted type
// constraints, the other legacy form it rewrites, are caught by checkModule.
import { format } from '@cdktf/hcl-tools';

/** Problems with the formatting of the given HCL files, as `file: what`. */
export async function formattingProblems(files: ReadonlyMap<string, string>): Promise<string[]> {
  const problems: string[] = [];
  for (const [file, text] of files) {
    const formatted = await format(text);
    if (formatted !== text) {
      const at = firstDifference(text, formatted);
      problems.push(`${file}:${at.line}: not in canonical format; expected "${at.expected}"`);
    }
    text.split('\n').forEach((line, index) => {
      const interpolation = /=\s*"\$\{(.*)\}"\s*$/.exec(line)?.[1];
      if (interpolation !== undefined && !/[{}]/.test(interpolation)) {
        problems.push(`${file}:${index + 1}: interpolation-only string; write the expression bare`);
      }
    });
  }
  return problems;
}

function firstDifference(actual: string, expected: string) {
  const actualLines = actual.split('\n');
  const expectedLines = expected.split('\n');
  const index = actualLines.findIndex((line, i) => line !== expectedLines[i]);
  const at = index === -1 ? actualLines.length : index;
  return { line: at + 1, expected: (expectedLines[at] ?? '<end of file>').trim() };
}
