// FdWatcher waits on a foreign fd with its own poll handle: each wait calls
// the callback it was given (not the first one ever given), once, and close()
// leaves the watched fd open.
import t from 'tap';
import * as fs from 'node:fs';
import { POLL_READABLE, requireBinding } from '../../lib/native/binding.js';
import { FdWatcher } from '../../lib/socket/fd-watcher.js';
import { createPipe } from '../../lib/tools/pipe.js';

t.test('every wait calls its own callback, once', async (t) => {
  const [r, w] = createPipe();
  t.teardown(() => (fs.closeSync(r), fs.closeSync(w)));
  const watcher = new FdWatcher(requireBinding(), r);
  t.teardown(() => watcher.close());
  const calls: string[] = [];
  const wait = (name: string): Promise<void> => new Promise((resolve) => watcher.whenReady(POLL_READABLE, () => (calls.push(name), resolve())));
  fs.writeSync(w, 'x');
  await wait('first');
  await wait('second');
  await new Promise((resolve) => setTimeout(resolve, 20));
  t.same(calls, ['first', 'second'], 'the second wait ran the second callback, and nothing ran twice');
  const buf = Buffer.alloc(1);
  t.equal(fs.readSync(r, buf), 1, 'the watched fd is still open and readable');
});
