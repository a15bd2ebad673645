// Ending while a file goes out: ktls sends it with sendFile() (sendfile(2) under
// kernel TX), node:tls as one write of the file's bytes, the same application
// step ("send this file, then end") on each stack.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { onError, politePeer } from './kit.js';
import type { Scenario } from './run.js';
import type { AppSocket } from './stack.js';

const FILE_SIZE = 4 << 20;
let file: string | undefined;

/** A 4 MiB file of known bytes, made once per process and removed at exit. */
function theFile(): string {
  if (file) return file;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ktls-diff-'));
  process.once('exit', () => fs.rmSync(dir, { recursive: true, force: true }));
  const body = Buffer.alloc(FILE_SIZE);
  for (let i = 0; i < body.length; i++) body[i] = (i * 131) & 0xff;
  file = path.join(dir, 'body');
  fs.writeFileSync(file, body);
  return file;
}

/** Sends the file and ends, as an application would on each stack (no 'drain': the end comes with it). */
function sendFileAndEnd(s: AppSocket): void {
  const f = theFile();
  const own = s as AppSocket & { sendFile?: (f: string) => Promise<number> };
  if (typeof own.sendFile === 'function') {
    own.sendFile(f).catch(() => undefined); // the socket's own events say how it ended
    s.end();
  } else s.end(fs.readFileSync(f));
}

export const files: Scenario[] = [
  {
    name: 'the server sends a 4 MiB file and ends while it goes out; the client reads it all',
    server: (s) => (onError(s), s.resume(), sendFileAndEnd(s)),
    client: (s) => void politePeer(s),
  },
];
