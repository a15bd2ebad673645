// The known-kernel-defects table (lib/native/defects.ts): every entry can be
// recognised, and kernels past an entry's range never pay for looking.
import t from 'tap';
import { KERNEL_DEFECTS, detectDefect, kernelDefect, kernelVersion } from '../../lib/native/defects.js';
import { CIPHER_NAMES, VERSIONS } from '../../lib/native/constants.js';

t.test('every table entry names its versions, ciphers, range, fix and evidence, and has a detector', async (t) => {
  t.ok(KERNEL_DEFECTS.length >= 3, `${KERNEL_DEFECTS.length} entries`);
  const ids = new Set<string>();
  for (const d of KERNEL_DEFECTS) {
    t.notOk(ids.has(d.id), `${d.id}: unique id`);
    ids.add(d.id);
    t.ok(d.versions.length > 0 && d.versions.every((v) => VERSIONS.includes(v)), `${d.id}: known versions`);
    t.ok(d.ciphers.length > 0 && d.ciphers.every((c) => CIPHER_NAMES.includes(c)), `${d.id}: known ciphers`);
    t.match(d.before, /^\d+\.\d+$/, `${d.id}: a major.minor bound`);
    for (const text of [d.summary, d.fixedIn, d.evidence]) t.ok(text.length > 20, `${d.id}: says what, what fixed it, and the evidence`);
    // An unknown id throws; a known one has a detector (it runs, or says the kernel has no kTLS).
    await t.resolves(detectDefect(d.id, d.versions[0], d.ciphers[0]), `${d.id}: has a detector`);
  }
  await t.rejects(detectDefect('no-such-defect', 'TLSv1.3', 'aes-128-gcm'), { name: 'RangeError' });
});

t.test('kernels at or past a range are not checked for that defect', async (t) => {
  for (const d of KERNEL_DEFECTS) {
    // A detector that ran would say something on a kernel without kTLS, or find nothing; not running answers at once with null.
    for (const rel of [`${d.before}.0`, `${d.before}.7-amd64`, '7.2.7', '8.0.1'])
      t.equal(await kernelDefect(d.area, d.versions[0], d.ciphers[0], rel), null, `${rel}: ${d.id} not looked for`);
  }
});

t.test('kernelVersion() reads major.minor from distribution release strings', async (t) => {
  t.same(kernelVersion('5.10.0-28-amd64'), [5, 10]);
  t.same(kernelVersion('6.8.0-45-generic'), [6, 8]);
  t.same(kernelVersion('5.14.0-362.el9.x86_64'), [5, 14]);
  t.same(kernelVersion('garbage'), [0, 0]);
});
