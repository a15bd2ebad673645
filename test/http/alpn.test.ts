// createHttpsServer never negotiates HTTP/2: Node's http2 cannot run on a
// KtlsSocket. 'h2' in ALPNProtocols is refused up front; an ALPNCallback that
// picks 'h2' ends that handshake; clients offering h2 get http/1.1 or nothing.
import t, { type Test } from 'tap';
import * as http2 from 'node:http2';
import * as tls from 'node:tls';
import * as ktls from '../../lib/index.js';
import { CERTS, listening, portOf } from '../helpers/tls.js';

const base = { key: CERTS.key, cert: CERTS.cert };

/** A handshake offering `protocols`: the ALPN result, or the error that ended it. */
function offer(port: number, protocols: string[]): Promise<{ alpn: string | false | null } | { error: NodeJS.ErrnoException }> {
  return new Promise((resolve) => {
    const s = tls.connect({ host: '127.0.0.1', port, servername: 'localhost', ca: CERTS.ca, ALPNProtocols: protocols }, () => {
      resolve({ alpn: s.alpnProtocol });
      s.destroy();
    });
    s.once('error', (error: NodeJS.ErrnoException) => resolve({ error }));
  });
}

async function serve(t: Test, options: ktls.KtlsHttpsServerOptions): Promise<number> {
  const server = ktls.createHttpsServer({ ...base, ...options }, (_req, res) => res.end('ok'));
  server.listen(0, '127.0.0.1');
  await listening(server);
  t.teardown(() => server.close());
  return portOf(server);
}

t.test("ALPNProtocols naming 'h2' throws ERR_INVALID_ARG_VALUE in every form", async (t) => {
  t.throws(() => ktls.createHttpsServer({ ...base, ALPNProtocols: ['h2', 'http/1.1'] }), { code: 'ERR_INVALID_ARG_VALUE' }, 'strings');
  t.throws(() => ktls.createHttpsServer({ ...base, ALPNProtocols: [Buffer.from('h2')] as unknown as string[] }), { code: 'ERR_INVALID_ARG_VALUE' }, 'buffers');
  t.throws(
    () => ktls.createHttpsServer({ ...base, ALPNProtocols: Buffer.from('\x08http/1.1\x02h2', 'latin1') }),
    { code: 'ERR_INVALID_ARG_VALUE' },
    'one buffer in wire format',
  );
  const ok = ktls.createHttpsServer({ ...base, ALPNProtocols: ['http/1.1', 'h2c-not-h2'] });
  t.ok(ok, "a list without 'h2' is accepted");
});

t.test('a client offering h2 and http/1.1 gets http/1.1; one offering only h2 never gets h2', async (t) => {
  const port = await serve(t, {});
  t.same(await offer(port, ['h2', 'http/1.1']), { alpn: 'http/1.1' }, 'h2 + http/1.1 → http/1.1');
  const only = await offer(port, ['h2']);
  t.comment(`h2 only → ${'error' in only ? `handshake failure ${only.error.code}` : `alpn ${String(only.alpn)}`}`);
  if ('error' in only) t.equal(only.error.code, 'ERR_SSL_TLSV1_ALERT_NO_APPLICATION_PROTOCOL', 'refused with no_application_protocol');
  else t.not(only.alpn, 'h2', 'not h2');
});

t.test("an ALPNCallback answer 'h2' ends the handshake with no_application_protocol; other answers stand", async (t) => {
  const seen: string[][] = [];
  const port = await serve(t, {
    ALPNCallback: ({ protocols }) => {
      seen.push(protocols);
      return protocols.includes('h2') ? 'h2' : protocols[0];
    },
  });
  const refused = await offer(port, ['h2', 'http/1.1']);
  t.ok('error' in refused, 'the handshake failed');
  if ('error' in refused) t.equal(refused.error.code, 'ERR_SSL_TLSV1_ALERT_NO_APPLICATION_PROTOCOL');
  t.same(await offer(port, ['http/1.1']), { alpn: 'http/1.1' }, 'an http/1.1 answer is kept');
  t.same(seen, [['h2', 'http/1.1'], ['http/1.1']], 'the callback saw each offer');
});

t.test('node:http2 cannot connect: the session fails instead of speaking h2 to http/1.1', async (t) => {
  const port = await serve(t, {});
  const err = await new Promise<Error & { code?: string }>((resolve) => {
    const session = http2.connect(`https://localhost:${port}`, { ca: CERTS.ca, host: '127.0.0.1', servername: 'localhost' });
    session.once('error', (e: Error) => {
      session.destroy();
      resolve(e);
    });
    session.once('connect', () => {
      session.destroy();
      resolve(Object.assign(new Error('connected'), { code: 'CONNECTED' }));
    });
  });
  t.not(err.code, 'CONNECTED', 'no HTTP/2 session');
  t.comment(`http2.connect: ${err.code ?? err.message}`);
});
