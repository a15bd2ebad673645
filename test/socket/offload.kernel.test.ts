// socket.offload under a kTLS kernel: read from the kernel (sock_diag's
// TLS_INFO), per direction; what an unprivileged process sees; and
// TLS_TX_ZEROCOPY_RO, which ktls sets only where a NIC seals the records.
import t from 'tap';
import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as ktls from '../../lib/index.js';
import { requireBinding } from '../../lib/native/binding.js';
import { capabilities, requireKtls } from '../helpers/kernel.js';
import { loopbackPair, readBytes, sessionKeys } from '../helpers/pair.js';

void t.test('kernel records: offload reads kernel-sw both ways from sock_diag, and the SOL_TLS options in force', async (t) => {
  const caps = await requireKtls(t);
  for (const version of ['TLSv1.2', 'TLSv1.3'] as const) {
    const [a, b] = await loopbackPair();
    const keys = sessionKeys(version, 'aes-128-gcm');
    const [x, y] = await Promise.all([ktls.upgrade(a, keys.a), ktls.upgrade(b, keys.b)]);
    const o = y.offload;
    t.match(o, { tx: 'kernel-sw', rx: 'kernel-sw', source: 'sock_diag', zeroCopySendfile: false }, `${version}: the kernel seals and opens in software`);
    t.equal(o.reason, undefined, `${version}: no reason: nothing fell back`);
    const noPad = version === 'TLSv1.3' && caps.rxExpectNoPad && !caps.defects.some((d) => d.id === 'rx-no-pad-retry');
    t.equal(o.rxExpectNoPad, noPad, `${version}: TLS_RX_EXPECT_NO_PAD ${noPad ? 'on' : 'off'} (kernel ${caps.kernelRelease})`);
    const diag = requireBinding().tlsDiag(y.fd);
    t.equal(typeof diag === 'object' && diag.rxNoPad, noPad, "sock_diag's TLS_INFO_RX_NO_PAD agrees");
    x.destroy();
    y.destroy();
  }
});

void t.test('sendFile on software kTLS leaves TLS_TX_ZEROCOPY_RO off; offload reports the option when it is on', async (t) => {
  const caps = await capabilities();
  await requireKtls(t);
  const [a, b] = await loopbackPair();
  const keys = sessionKeys('TLSv1.3', 'aes-128-gcm');
  const [x, y] = await Promise.all([ktls.upgrade(a, keys.a), ktls.upgrade(b, keys.b)]);
  const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'ktls-zc-')), 'f');
  fs.writeFileSync(file, Buffer.alloc(200_000, 9));
  t.teardown(() => fs.rmSync(path.dirname(file), { recursive: true, force: true }));
  const got = readBytes(y, 200_000);
  t.equal(await x.sendFile(file), 200_000);
  t.equal((await got).length, 200_000);
  t.equal(x.offload.tx, 'kernel-sw');
  t.equal(x.offload.zeroCopySendfile, false, 'TX is software kTLS: ktls did not set TLS_TX_ZEROCOPY_RO');
  const b2 = requireBinding();
  const rc = b2.setsockoptInt(x.fd, b2.constants.SOL_TLS, b2.constants.TLS_TX_ZEROCOPY_RO, 1);
  if (caps.txZerocopyRo) {
    t.equal(rc, 0, 'the kernel takes TLS_TX_ZEROCOPY_RO when asked');
    t.equal(x.offload.zeroCopySendfile, true, 'and offload reads it back from the kernel');
  } else t.ok(rc < 0, `this kernel has no TLS_TX_ZEROCOPY_RO (${rc})`);
  x.destroy();
  y.destroy();
});

void t.test('an unprivileged process: offload says kernel-sw where the kernel shows TLS_INFO to it, kernel (and why) where it does not', async (t) => {
  await requireKtls(t);
  t.equal(process.getuid?.(), 0, 'the kTLS guest runs the tests as root (to drop to nobody below)');
  const dir = path.resolve(__dirname, '..', '..');
  const script = `
    const ktls = require(${JSON.stringify(path.join(dir, 'lib', 'index.js'))});
    const { loopbackPair } = require(${JSON.stringify(path.join(dir, 'lib', 'native', 'loopback.js'))});
    const { sessionKeys } = require(${JSON.stringify(path.join(dir, 'lib', 'verify', 'util.js'))});
    (async () => {
      const [a, b] = await loopbackPair();
      const keys = sessionKeys('TLSv1.3', 'aes-128-gcm');
      const [x, y] = await Promise.all([ktls.upgrade(a, keys.a), ktls.upgrade(b, keys.b)]);
      const counted = (await ktls.stats()).process.connections;
      console.log(JSON.stringify({ uid: process.getuid(), offload: y.offload, counted }));
      x.destroy(); y.destroy();
    })();`;
  const out = await new Promise<string>((resolve, reject) =>
    execFile('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', process.execPath, '-e', script], (err, stdout, stderr) =>
      err ? reject(new Error(`${err.message}: ${stderr}`)) : resolve(stdout),
    ),
  );
  const seen = JSON.parse(out) as { uid: number; offload: ktls.Offload; counted: Record<ktls.ConnectionKind, number> };
  t.equal(seen.uid, 65534, 'ran as nobody');
  const release = (await capabilities()).kernelRelease;
  if (seen.offload.source === 'sock_diag') {
    // Newer kernels (7.2 here) show the TLS ULP's info to any process; 6.1 does not.
    t.match(seen.offload, { tx: 'kernel-sw', rx: 'kernel-sw' }, `kernel ${release} shows TLS_INFO to an unprivileged process`);
    t.same(seen.counted, { 'kernel-sw': 2, 'kernel-hw': 0, kernel: 0, partial: 0, userspace: 0, none: 0 }, "stats() counts both as 'kernel-sw'");
  } else {
    t.match(
      seen.offload,
      { tx: 'kernel', rx: 'kernel', source: 'ktls' },
      `kernel ${release} hides TLS_INFO: both directions the kernel's, which way it would not say`,
    );
    t.match(seen.offload.reason, /CAP_NET_ADMIN/);
    t.same(seen.counted, { 'kernel-sw': 0, 'kernel-hw': 0, kernel: 2, partial: 0, userspace: 0, none: 0 }, "stats() counts both as 'kernel'");
  }
});
