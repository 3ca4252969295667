/**
 * node:dgram UDP echo server for the datagram benchmark: the way Node programs echo today.
 *
 * Usage: node --import tsx bench/servers/dgram-echo.ts [LIFETIME_S=300] [v6]
 * Prints "PORT <n>" once bound to 127.0.0.1 (or ::1).
 */
import dgram from 'node:dgram';

const lifetimeS = Number(process.argv[2] ?? 300);
const v6 = process.argv[3] === 'v6';
const socket = dgram.createSocket({ type: v6 ? 'udp6' : 'udp4', recvBufferSize: 4 << 20, sendBufferSize: 4 << 20 });
socket.on('message', (message, rinfo) => socket.send(message, rinfo.port, rinfo.address));
socket.bind(0, v6 ? '::1' : '127.0.0.1', () => {
  process.stdout.write(`PORT ${socket.address().port}\n`);
});
setTimeout(() => process.exit(0), lifetimeS * 1000).unref();
