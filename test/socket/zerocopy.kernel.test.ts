// sendFile, splice both ways and TCP_CORK under kernel TLS, bytes checked end to end.
import t from 'tap';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { createHash } from 'node:crypto';
import { loadBinding } from '../../lib/native/binding.js';
import { requireKtls } from '../helpers/kernel.js';
import { upgradedPair } from '../helpers/pair.js';
import { tempDir, zeroCopySuite } from '../helpers/zerocopy.js';

t.before(async () => {
  await requireKtls(t);
});

zeroCopySuite(t, {}, true);

t.test('sendFile of a 1 GiB sparse file goes through sendfile(2) intact', async (t) => {
  const dir = tempDir(t);
  const file = path.join(dir, 'sparse');
  const size = 1024 * 1024 * 1024;
  fs.writeFileSync(file, Buffer.from('start'));
  fs.truncateSync(file, size);
  const fd = fs.openSync(file, 'r+');
  fs.writeSync(fd, Buffer.from('end'), 0, 3, size - 3);
  fs.closeSync(fd);
  const [a, b] = await upgradedPair('TLSv1.3', 'aes-128-gcm');
  const binding = loadBinding().binding!;
  const real = binding.sendfile;
  let viaSendfile = 0;
  (binding as { sendfile: typeof real }).sendfile = (out, inFd, off, count) => {
    const n = real(out, inFd, off, count);
    if (n > 0) viaSendfile += n;
    return n;
  };
  t.teardown(() => {
    (binding as { sendfile: typeof real }).sendfile = real;
  });
  const hash = createHash('sha256');
  let got = 0;
  const done = new Promise<void>((resolve, reject) =>
    b
      .on('data', (c: Buffer) => {
        got += c.length;
        hash.update(c);
      })
      .once('end', resolve)
      .once('error', reject),
  );
  t.equal(await a.sendFile(file), size);
  a.end();
  await done;
  t.equal(got, size);
  t.equal(viaSendfile, size, 'every byte went through sendfile(2)');
  const expected = createHash('sha256');
  const zeros = Buffer.alloc(1024 * 1024);
  expected.update(Buffer.concat([Buffer.from('start'), zeros.subarray(5)]));
  for (let i = 1; i < 1023; i++) expected.update(zeros);
  expected.update(Buffer.concat([zeros.subarray(3), Buffer.from('end')]));
  t.equal(hash.digest('hex'), expected.digest('hex'));
});
