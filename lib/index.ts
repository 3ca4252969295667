/**
 * m-socket: raw non-blocking TCP and Unix sockets and an explicit epoll multiplexer for Node.js,
 * through libc with koffi. The public face: re-exports only.
 */
export { SocketError, SocketClosedError, type ArgumentError } from './errors.ts';
export {
  Socket,
  END_OF_STREAM,
  DEFAULT_SEND_QUEUE_LIMIT,
  type SendStatus,
  type ReceiveStatus,
  type ReceiveResult,
  type SocketState,
  type ShutdownHow,
  type SocketOptions,
} from './socket.ts';
export { FdsTruncatedError } from './errors.ts';
export type { ReceiveWithFdsResult, PeerCredentials, FdLike } from './fd-passing.ts';
export type { ConnectOptions } from './connect.ts';
export { OwnedFd } from './owned-fd.ts';
export type { ReceivedFd } from './received-fd.ts';
export { Listener, type ListenOptions } from './listener.ts';
export {
  Multiplexer,
  Interest,
  type MultiplexerEvent,
  type MultiplexerOptions,
  type MultiplexerTarget,
} from './multiplexer.ts';
export { Reactor, type ReactorHandler, type ReactorOptions } from './reactor.ts';
export type { BackendName } from './backends/backend.ts';
export {
  isIP,
  formatAddress,
  isLoopback,
  isUnspecified,
  type SocketAddress,
  type InetAddress,
  type UnixAddress,
} from './address.ts';
export { resolve, ResolveError, type ResolveOptions } from './resolve.ts';
export {
  setOption,
  getOption,
  setRawOption,
  getRawOption,
  getRawIntOption,
  type SocketOptionName,
  type SocketOptionValues,
} from './options.ts';
export { SocketStream, toStream, type SocketStreamOptions } from './stream.ts';
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
} from './promises.ts';
