// fastify 5 on ktls.createHttpsServer (through serverFactory) under a kTLS
// kernel: static files through ktls.serveFile (sendfile(2) into kTLS), a JSON
// API, a 100 MiB upload streamed to disk, keep-alive and graceful shutdown
// (fastify.close()), with curl, undici and node:https.
import t from 'tap';
import * as fs from 'node:fs';
import type * as http from 'node:http';
import * as path from 'node:path';
import Fastify from 'fastify';
import * as ktls from '../../lib/index.js';
import { requireKtls } from '../helpers/kernel.js';
import { checkGracefulClose, checkJson, checkKeepAlive, checkStatic, checkUpload, makeFixtures, ServerLog, type App } from '../helpers/frameworks.js';
import { CERTS } from '../helpers/tls.js';

const fx = makeFixtures();
t.teardown(fx.cleanup);

async function start(): Promise<App> {
  const log = new ServerLog();
  let server!: ktls.KtlsHttpsServer;
  const app = Fastify({
    // A KtlsHttpsServer has http.Server's members fastify uses, not its exact type.
    serverFactory: (handler: http.RequestListener) => {
      server = ktls.createHttpsServer({ key: CERTS.key, cert: CERTS.cert }, handler);
      return server as unknown as http.Server;
    },
    bodyLimit: 1024 * 1024,
  });
  app.addHook('onRequest', async (req) => log.saw(req.raw));
  // Uploads: fastify leaves the body unread; the handler streams request.raw to disk.
  app.addContentTypeParser('application/octet-stream', (_req, _payload, done) => done(null));
  app.get<{ Params: { name: string } }>('/static/:name', async (req, reply) => {
    reply.hijack();
    log.served.push(await ktls.serveFile(reply.raw, req.params.name, { root: fx.staticDir }));
  });
  app.post('/api/sum', async (req) => ServerLog.json(req.body, req.raw.socket as unknown as ktls.KtlsSocket));
  app.put('/upload', async (req) => log.upload(req.raw, fx.uploadDir));
  app.get('/slow', (_req, reply) => {
    reply.hijack();
    log.slow(reply.raw);
  });
  await app.listen({ port: 0, host: '127.0.0.1' });
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('no TCP address');
  t.equal(app.server, server, "fastify's server is the KtlsHttpsServer");
  return { port: address.port, server, log, close: () => app.close() };
}

t.test('fastify on kTLS: static files with sendfile, JSON, keep-alive, a 100 MiB upload, graceful close', async (t) => {
  await requireKtls(t);
  const app = await start();
  t.teardown(() => app.server.closeAllConnections());
  const tmp = fs.mkdtempSync(path.join(fx.dir, 'dl-'));
  await t.test('static files through ktls.serveFile', (t) => checkStatic(t, app, fx, tmp));
  await t.test('a JSON API', (t) => checkJson(t, app));
  await t.test('keep-alive', (t) => checkKeepAlive(t, app, fx));
  await t.test('a 100 MiB upload with undici, streamed to disk', (t) => checkUpload(t, app, fx, 'undici'));
  await t.test('graceful shutdown', (t) => checkGracefulClose(t, app));
});
