/**
 * The sender of the GSO benchmark (bench/gso.ts): sends COUNT datagrams of SIZE bytes to
 * 127.0.0.1:PORT as fast as it can, one way, and prints `sent=N cpu_us=X wall_us=Y` (this
 * process's user + system CPU, which on loopback includes the kernel's work for each datagram).
 *
 * Usage: node --import tsx bench/servers/udp-sender.ts MODE COUNT SIZE PORT
 * MODE: `dgram` (node:dgram socket.send per datagram), `sendTo` (m-socket, one sendto each),
 * `batch` (m-socket sendBatch, 64 per sendmmsg), `gso` (m-socket sendSegments, one GSO send of up
 * to 64 datagrams).
 */
import dgram from 'node:dgram';
import { DatagramBatch, DatagramSocket, MAX_GSO_SEGMENTS, MAX_UDP_PAYLOAD } from '../../lib/index.ts';

const [mode, countText, sizeText, portText] = process.argv.slice(2);
const count = Number(countText);
const size = Number(sizeText);
const port = Number(portText);
const payload = new Uint8Array(size).fill(0x5a);
const to = { host: '127.0.0.1', port };

async function run(): Promise<number> {
  if (mode === 'dgram') {
    const socket = dgram.createSocket({ type: 'udp4', sendBufferSize: 4 << 20 });
    const buffer = Buffer.from(payload);
    let sent = 0;
    await new Promise<void>((resolve, reject) => {
      // As a Node program would: send, and keep a bounded number in flight (libuv queues them).
      let inFlight = 0;
      const pump = () => {
        while (sent < count && inFlight < 256) {
          inFlight++;
          sent++;
          socket.send(buffer, port, '127.0.0.1', (err) => {
            inFlight--;
            if (err) reject(err);
            else if (sent === count && inFlight === 0) resolve();
            else if (inFlight < 128) pump();
          });
        }
      };
      pump();
    });
    socket.close();
    return sent;
  }
  const socket = DatagramSocket.create({ family: 'IPv4', socketOptions: { sendBufferSize: 4 << 20 }, sendQueueLimit: 1 << 24 });
  let sent = 0;
  if (mode === 'sendTo') {
    for (; sent < count; sent++) socket.sendTo(payload, to);
  } else if (mode === 'batch') {
    const batch = new DatagramBatch({ capacity: 64, datagramSize: size });
    for (let i = 0; i < 64; i++) {
      batch.set(i, payload);
      batch.setAddress(i, { family: 'IPv4', address: '127.0.0.1', port });
    }
    while (sent < count) sent += socket.sendBatch(batch, Math.min(64, count - sent));
  } else if (mode === 'gso') {
    const perCall = Math.min(MAX_GSO_SEGMENTS, Math.floor(MAX_UDP_PAYLOAD.IPv4 / size));
    const big = new Uint8Array(perCall * size).fill(0x5a);
    while (sent < count) {
      const n = Math.min(perCall, count - sent);
      socket.sendSegments(big, size, to, n * size);
      sent += n;
    }
    if (socket.segmentation !== 'gso') throw new Error(`segmentation: ${socket.segmentation}`);
  } else {
    throw new Error(`unknown mode ${mode}`);
  }
  // Whatever waited in the queue (the kernel's buffer was full) goes now.
  for (let i = 0; i < 10000 && socket.flush() > 0; i++) await new Promise((r) => setImmediate(r));
  socket.close();
  return sent;
}

const cpu0 = process.cpuUsage();
const wall0 = performance.now();
const sent = await run();
const cpu = process.cpuUsage(cpu0);
process.stdout.write(`sent=${sent} cpu_us=${cpu.user + cpu.system} wall_us=${Math.round((performance.now() - wall0) * 1000)}\n`);
process.exit(0);
