// Peers nobody here wrote: OpenSSL's s_client and s_server, curl, and Python's
// ssl module exchange data with ktls endpoints whose records run in the kernel.
import t from 'tap';
import { spawn } from 'node:child_process';
import * as path from 'node:path';
import * as ktls from '../../lib/index.js';
import { requireKtls } from '../helpers/kernel.js';
import { readAll } from '../helpers/pair.js';
import { CERTS, FIXTURES, listening, portOf } from '../helpers/tls.js';

const VERSIONS = [
  ['TLSv1.2', '-tls1_2', 'TLSv1_2'],
  ['TLSv1.3', '-tls1_3', 'TLSv1_3'],
] as const;

/** Runs a program, feeding `input`, and resolves with its stdout and exit status. */
function run(cmd: string, args: string[], input = ''): Promise<{ out: string; code: number | null }> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ out, code }));
    child.stdin.end(input);
  });
}

async function ktlsEchoServer(v: string, sockets: ktls.KtlsSocket[], respond?: (s: ktls.KtlsSocket) => void) {
  const server = ktls.createServer({ key: CERTS.key, cert: CERTS.cert, minVersion: v as 'TLSv1.2', maxVersion: v as 'TLSv1.2' }, (s) => {
    sockets.push(s);
    s.on('error', () => undefined);
    if (respond) respond(s);
    else s.pipe(s);
  });
  server.listen(0, '127.0.0.1');
  await listening(server);
  return server;
}

t.test('openssl s_client talks to a ktls server', async (t) => {
  await requireKtls(t);
  for (const [v, flag] of VERSIONS) {
    const sockets: ktls.KtlsSocket[] = [];
    const server = await ktlsEchoServer(v, sockets, (s) => s.on('data', (d: Buffer) => s.end(`echo:${d.toString()}`)));
    const r = await run(
      'openssl',
      [
        's_client',
        '-connect',
        `127.0.0.1:${portOf(server)}`,
        flag,
        '-quiet',
        '-CAfile',
        path.join(FIXTURES, 'ca.pem'),
        '-verify_return_error',
        '-servername',
        'localhost',
      ],
      `hello from s_client ${v}\n`,
    );
    t.match(r.out, `echo:hello from s_client ${v}`, `${v}: s_client got the echo`);
    t.equal(sockets[0]?.kernel, true, `${v}: server socket in the kernel`);
    server.close();
  }
});

t.test('a ktls client talks to openssl s_server -rev', async (t) => {
  await requireKtls(t);
  for (const [v, flag] of VERSIONS) {
    const port = 20000 + Math.floor(Math.random() * 20000);
    const server = spawn(
      'openssl',
      [
        's_server',
        '-accept',
        `127.0.0.1:${port}`,
        flag,
        '-rev',
        '-naccept',
        '1',
        '-cert',
        path.join(FIXTURES, 'server.pem'),
        '-key',
        path.join(FIXTURES, 'server.key'),
      ],
      { stdio: ['pipe', 'pipe', 'pipe'] },
    );
    let sock: ktls.KtlsSocket | undefined;
    for (let i = 0; i < 100 && !sock; i++) {
      sock = await ktls.connectAsync({ port, host: '127.0.0.1', servername: 'localhost', ca: CERTS.ca, minVersion: v, maxVersion: v }).catch(async () => {
        await new Promise((r) => setTimeout(r, 100));
        return undefined;
      });
    }
    t.ok(sock, `${v}: connected to s_server`);
    t.equal(sock?.kernel, true, `${v}: client socket in the kernel`);
    const got = new Promise<string>((resolve) => {
      let text = '';
      sock!.on('data', (d: Buffer) => {
        text += d.toString();
        if (text.includes('\n') && text.includes('revetsk')) resolve(text);
      });
    });
    sock!.write('kstever\n');
    t.match(await got, 'revetsk', `${v}: s_server reversed our line`);
    sock!.destroy();
    server.kill();
  }
});

t.test('curl fetches over HTTPS from a ktls server', async (t) => {
  await requireKtls(t);
  for (const [v, ,] of VERSIONS) {
    const sockets: ktls.KtlsSocket[] = [];
    const body = `served by ktls over ${v}\n`;
    const server = await ktlsEchoServer(v, sockets, (s) => {
      s.once('data', () => s.end(`HTTP/1.1 200 OK\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n${body}`));
    });
    const r = await run('curl', [
      '-sS',
      '--cacert',
      path.join(FIXTURES, 'ca.pem'),
      v === 'TLSv1.2' ? '--tlsv1.2' : '--tlsv1.3',
      '--tls-max',
      v === 'TLSv1.2' ? '1.2' : '1.3',
      '--resolve',
      `localhost:${portOf(server)}:127.0.0.1`,
      `https://localhost:${portOf(server)}/`,
    ]);
    t.equal(r.out, body, `${v}: curl got the body`);
    t.equal(r.code, 0);
    t.equal(sockets[0]?.kernel, true, `${v}: server socket in the kernel`);
    server.close();
  }
});

t.test("Python's ssl module talks to a ktls server", async (t) => {
  await requireKtls(t);
  for (const [v, , pyVersion] of VERSIONS) {
    const sockets: ktls.KtlsSocket[] = [];
    const server = await ktlsEchoServer(v, sockets);
    const script = [
      'import socket, ssl, sys',
      `ctx = ssl.create_default_context(cafile=${JSON.stringify(path.join(FIXTURES, 'ca.pem'))})`,
      `ctx.minimum_version = ctx.maximum_version = ssl.TLSVersion.${pyVersion}`,
      `s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", ${portOf(server)})), server_hostname="localhost")`,
      'data = bytes(range(256)) * 4096',
      's.sendall(data)',
      'got = b""',
      'while len(got) < len(data):',
      '    chunk = s.recv(65536)',
      '    if not chunk: break',
      '    got += chunk',
      'print("match" if got == data else "mismatch %d" % len(got), s.version())',
      's.unwrap() if False else s.close()',
    ].join('\n');
    const r = await run('python3', ['-c', script]);
    t.match(r.out, `match ${v}`, `${v}: 1 MiB echoed intact to Python`);
    t.equal(sockets[0]?.kernel, true, `${v}: server socket in the kernel`);
    server.close();
  }
});

t.test('readAll sanity: a ktls server echo ends cleanly with a ktls client', async (t) => {
  await requireKtls(t);
  const sockets: ktls.KtlsSocket[] = [];
  const server = await ktlsEchoServer('TLSv1.3', sockets);
  const sock = await ktls.connectAsync({ port: portOf(server), host: '127.0.0.1', servername: 'localhost', ca: CERTS.ca });
  const got = readAll(sock);
  sock.end('both ends ktls');
  t.equal((await got).toString(), 'both ends ktls');
  server.close();
});
