// Renamed exports keep working for one minor version under their old names,
// each warning once with its own deprecation code: ktls.sendFile(res, …) is
// ktls.serveFile, ktls.pipe() is ktls.createPipe().
import t from 'tap';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as ktls from '../lib/index.js';

function deprecations(): { codes: string[]; stop(): void } {
  const codes: string[] = [];
  const on = (w: Error & { code?: string }): void => void (w.name === 'DeprecationWarning' && codes.push(w.code ?? ''));
  process.on('warning', on);
  return { codes, stop: () => process.off('warning', on) };
}

const tick = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

t.test('ktls.pipe() makes a pipe as createPipe() does and warns KTLS_DEP_PIPE once', async (t) => {
  const seen = deprecations();
  t.teardown(seen.stop);
  for (let i = 0; i < 2; i++) {
    const [r, w] = ktls.pipe();
    fs.writeSync(w, 'x');
    const buf = Buffer.alloc(1);
    t.equal(fs.readSync(r, buf), 1, 'the pipe carries bytes');
    fs.closeSync(r);
    fs.closeSync(w);
  }
  await tick();
  t.same(
    seen.codes.filter((c) => c === 'KTLS_DEP_PIPE'),
    ['KTLS_DEP_PIPE'],
  );
});

t.test('ktls.sendFile(res, …) is serveFile and warns KTLS_DEP_SEND_FILE once', async (t) => {
  const seen = deprecations();
  t.teardown(seen.stop);
  const server = http.createServer((req, res) => {
    ktls.sendFile(res, __filename).catch((err: Error) => res.destroy(err));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => server.close());
  const { port } = server.address() as { port: number };
  for (let i = 0; i < 2; i++) {
    const body = await new Promise<Buffer>((resolve, reject) => {
      http
        .get({ port, host: '127.0.0.1', agent: false }, (res) => {
          const chunks: Buffer[] = [];
          res
            .on('data', (c: Buffer) => chunks.push(c))
            .on('end', () => resolve(Buffer.concat(chunks)))
            .on('error', reject);
        })
        .on('error', reject);
    });
    t.ok(body.equals(fs.readFileSync(__filename)), 'the file was served');
  }
  await tick();
  t.same(
    seen.codes.filter((c) => c === 'KTLS_DEP_SEND_FILE'),
    ['KTLS_DEP_SEND_FILE'],
  );
  t.equal(ktls.serveFile.name, 'serveFile');
});
