/**
 * m-socket: raw non-blocking TCP and Unix sockets and an explicit epoll multiplexer for Node.js,
 * through libc with koffi. The public face: re-exports only.
 */
export { SocketError, SocketClosedError, type ArgumentError } from './core/errors.ts';
export {
  Socket,
  END_OF_STREAM,
  type SendStatus,
  type ReceiveStatus,
  type ReceiveResult,
  type SocketState,
  type ShutdownHow,
} from './stream/socket.ts';
export { DEFAULT_SEND_QUEUE_LIMIT, type SocketOptions } from './stream/send-queue.ts';
export { FdsTruncatedError } from './core/errors.ts';
export type { PeerCredentials, FdLike } from './core/fd-passing.ts';
export type { ConnectOptions } from './stream/connect.ts';
export { OwnedFd } from './core/owned-fd.ts';
export type { ReceivedFd, ReceiveWithFdsResult } from './stream/received-fd.ts';
export { Listener, type ListenOptions, type TcpListener, type UnixListener, type PortOf } from './stream/listener.ts';
export {
  DatagramSocket,
  MAX_UDP_PAYLOAD,
  type UdpSocket,
  type UnixDatagramSocket,
  type DatagramSendStatus,
  type DatagramDestination,
  type DatagramBindOptions,
  type DatagramCreateOptions,
  type DatagramMetadataOptions,
  type DatagramWithFds,
  MAX_GSO_SEGMENTS,
} from './datagram/datagram-socket.ts';
export type { DatagramDestinationInfo } from './datagram/metadata.ts';
export type { DatagramReceipt } from './datagram/receipt.ts';
export { DatagramBatch, type DatagramBatchOptions } from './datagram/batch.ts';
export { SeqpacketListener, type SeqpacketListenOptions } from './datagram/seqpacket-listener.ts';
export { receiveDatagrams, type ReceivedDatagram, type ReceiveDatagramsOptions, type DatagramIterator } from './face/datagrams.ts';
export {
  Multiplexer,
  Interest,
  type MultiplexerEvent,
  type MultiplexerOptions,
  type MultiplexerTarget,
  type MultiplexerAddArguments,
} from './loop/multiplexer.ts';
export { Reactor, type ReactorHandler, type ReactorOptions } from './loop/reactor.ts';
export { Waker } from './loop/waker.ts';
export type { BackendName } from './loop/backends/backend.ts';
export {
  isIP,
  formatAddress,
  isLoopback,
  isUnspecified,
  type SocketAddress,
  type InetAddress,
  type UnixAddress,
} from './core/address.ts';
export { parseHostPort, formatHostPort, type HostPort } from './core/host-port.ts';
export { resolve, ResolveError, type ResolveOptions } from './core/resolve.ts';
export {
  setOption,
  getOption,
  setRawOption,
  getRawOption,
  getRawIntOption,
  type SocketOptionName,
  type SocketOptionValues,
} from './core/options.ts';
export { SocketStream, toStream, type SocketStreamOptions } from './face/duplex.ts';
export {
  connect,
  listen,
  accepts,
  closeGracefully,
  type AsyncConnectOptions,
  type AsyncListenOptions,
  type AcceptsOptions,
  type AcceptIterator,
  type CloseGracefullyOptions,
} from './face/promises.ts';
export { pipeSockets, type SocketPipe, type PipeResult } from './face/pipe.ts';
export { shutdownServer, type ShutdownOptions, type ShutdownResult } from './face/shutdown.ts';
export { IdleTimeouts, type IdleTimeoutsOptions } from './face/idle.ts';
