/**
 * A connected loopback TCP pair, for trying kTLS on this kernel (probe, defect
 * detectors, the verify suite).
 * @packageDocumentation
 */
import * as net from 'node:net';

/** A connected loopback TCP pair (both ends are plain `net.Socket`s). */
export async function loopbackPair(host = '127.0.0.1'): Promise<[net.Socket, net.Socket]> {
  const server = net.createServer();
  await new Promise<void>((resolve, reject) => server.once('error', reject).listen(0, host, resolve));
  const { port } = server.address() as net.AddressInfo;
  try {
    const accepted = new Promise<net.Socket>((resolve) => server.once('connection', resolve));
    const client = net.connect(port, host);
    await new Promise<void>((resolve, reject) => client.once('connect', resolve).once('error', reject));
    return [client, await accepted];
  } finally {
    server.close();
  }
}
