// Every check of the CloudFront Function (`npm run --prefix cdn test:cloudfront`): the suite in
// the node:vm stand-in of the runtime (suite.mjs), then, when the `njs` command is installed,
// the same requests replayed in njs (njs.mjs). Prints one JSON report; exits 1 on a failure.
// LEAKTRACE_REQUIRE_NJS=1 makes a missing njs a failure.

import { runSuite } from "./suite.mjs";
import { njsVersion, replay } from "./njs.mjs";

const cases = [];
const report = await runSuite({ record: (c) => cases.push(c) });
const version = njsVersion();
if (version) {
  const r = replay(cases);
  report.njs = { version, replayed: r.replayed, failed: r.failed, mismatches: r.mismatches };
  if (r.failed) {
    report.ok = false;
    report.failures.push(`njs ${version}: ${r.failed} of ${r.replayed} requests answered otherwise`);
  }
} else {
  report.njs = null;
  if (process.env.LEAKTRACE_REQUIRE_NJS === "1") {
    report.ok = false;
    report.failures.push("LEAKTRACE_REQUIRE_NJS=1 but the njs command is not installed");
  }
}
console.log(JSON.stringify(report));
process.exit(report.ok ? 0 : 1);
