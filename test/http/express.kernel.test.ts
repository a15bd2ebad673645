// express 5 on ktls.createHttpsServer under a kTLS kernel: static files through
// ktls.serveFile (sendfile(2) into kTLS), a JSON API, a 100 MiB upload streamed
// to disk, keep-alive and graceful shutdown, with curl, undici and node:https.
import t from 'tap';
import * as fs from 'node:fs';
import * as path from 'node:path';
import express from 'express';
import * as ktls from '../../lib/index.js';
import { requireKtls } from '../helpers/kernel.js';
import { checkGracefulClose, checkJson, checkKeepAlive, checkStatic, checkUpload, makeFixtures, ServerLog, type App } from '../helpers/frameworks.js';
import { CERTS, listening, portOf } from '../helpers/tls.js';

const fx = makeFixtures();
t.teardown(fx.cleanup);

async function start(): Promise<App> {
  const log = new ServerLog();
  const app = express();
  app.use((req, _res, next) => (log.saw(req), next()));
  app.get('/static/:name', (req, res, next) => {
    ktls.serveFile(res, req.params.name, { root: fx.staticDir }).then((r) => log.served.push(r), next);
  });
  app.post('/api/sum', express.json({ limit: '1mb' }), (req, res) => {
    res.json(ServerLog.json(req.body, req.socket as unknown as ktls.KtlsSocket));
  });
  app.put('/upload', (req, res, next) => {
    log.upload(req, fx.uploadDir).then((r) => res.json(r), next);
  });
  app.get('/slow', (_req, res) => log.slow(res));
  const server = ktls.createHttpsServer({ key: CERTS.key, cert: CERTS.cert }, app);
  server.listen(0, '127.0.0.1');
  await listening(server);
  return {
    port: portOf(server),
    server,
    log,
    close: () => new Promise((resolve, reject) => server.close((err) => (err ? reject(err) : resolve()))),
  };
}

t.test('express on kTLS: static files with sendfile, JSON, keep-alive, a 100 MiB upload, graceful close', async (t) => {
  await requireKtls(t);
  const app = await start();
  t.teardown(() => app.server.closeAllConnections());
  const tmp = fs.mkdtempSync(path.join(fx.dir, 'dl-'));
  await t.test('static files through ktls.serveFile', (t) => checkStatic(t, app, fx, tmp));
  await t.test('a JSON API', (t) => checkJson(t, app));
  await t.test('keep-alive', (t) => checkKeepAlive(t, app, fx));
  await t.test('a 100 MiB upload with curl -T, streamed to disk', (t) => checkUpload(t, app, fx, 'curl'));
  await t.test('graceful shutdown', (t) => checkGracefulClose(t, app));
});
