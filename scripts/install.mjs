#!/usr/bin/env node
// The package's install step. On Linux: node-gyp-build, which loads a prebuild
// from prebuilds/ when one fits and compiles from source otherwise. Elsewhere
// there is no kernel TLS and lib/ never loads the addon (everything reports
// ERR_KTLS_UNAVAILABLE), so nothing is compiled and no compiler is needed.
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';

if (process.platform !== 'linux') {
  process.stderr.write(`ktls: kernel TLS needs Linux; installed on ${process.platform} without the native addon (ktls.probe() reports it unavailable)\n`);
  process.exit(0);
}
const require = createRequire(import.meta.url);
const r = spawnSync(process.execPath, [require.resolve('node-gyp-build/bin.js')], { stdio: 'inherit' });
process.exit(r.status ?? 1);
