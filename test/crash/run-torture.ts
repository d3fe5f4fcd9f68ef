// `npm run torture`: the full crash-point run. Prints trials, crash points and violations, and
// exits non-zero on any violation. TORTURE_TRIALS sets the number of trials (default 250).
import { runTorture } from './torture.ts';

const trials = Number(process.env.TORTURE_TRIALS ?? 250);
const report = await runTorture({ trials, log: (line) => console.error(line) });
const crashed = Object.values(report.crashes).reduce((a, b) => a + b, 0);
console.log(`trials: ${report.trials}`);
console.log(`crash points exercised: ${crashed} ${JSON.stringify(report.crashes)}`);
console.log(`uploads acknowledged: ${report.acknowledged}; blobs checked: ${report.checkedBlobs}`);
console.log(`violations: ${report.violations.length}`);
for (const violation of report.violations) console.log(`  ${violation}`);
process.exitCode = report.violations.length === 0 ? 0 : 1;
