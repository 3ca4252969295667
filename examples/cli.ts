/**
 * Command-line plumbing shared by the example programs, so that each example shows the library
 * and not argument parsing: `--help` prints the usage and exits 0; a misused option prints the
 * message and the usage on stderr and exits 2 (the contract their tests check).
 */
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { formatAddress, Listener, type ListenOptions, type ReactorOptions } from '../lib/index.ts';

type Options = NonNullable<ParseArgsConfig['options']>;
type WithHelp<O extends Options> = O & { help: { type: 'boolean'; short: 'h'; default: false } };
/** The parsed values of `options`, typed as `parseArgs` types them. */
export type Values<O extends Options> = ReturnType<typeof parseArgs<{ options: WithHelp<O>; strict: true; allowPositionals: false }>>['values'];

export interface CommandLine<O extends Options> {
  values: Values<O>;
  /** Prints `message` and the usage on stderr, exits 2. */
  usageError(message: string): never;
  /** An integer option from `min` to `max`, or a usage error naming it. */
  integer(option: string, text: string, min: number, max: number): number;
  /**
   * Listens, or exits: a malformed --host is a usage error (exit 2), anything else (EADDRINUSE,
   * EACCES, EADDRNOTAVAIL...) a failure to start (one line on stderr, exit 1).
   */
  listen(options: ListenOptions & { host: string; port: number }): Listener;
}

/** Parses `process.argv` with `options` (plus `-h/--help`). */
export function commandLine<const O extends Options>(name: string, usage: string, options: O): CommandLine<O> {
  const usageError = (message: string): never => {
    process.stderr.write(`${name}: ${message}\n${usage}`);
    process.exit(2);
  };
  const help = { type: 'boolean', short: 'h', default: false } as const;
  let values: Values<O>;
  try {
    values = parseArgs({ options: { ...options, help }, strict: true, allowPositionals: false }).values as Values<O>;
  } catch (err) {
    return usageError((err as Error).message);
  }
  if ((values as { help?: boolean }).help) {
    process.stdout.write(usage);
    process.exit(0);
  }
  const integer = (option: string, text: string, min: number, max: number): number => {
    const value = Number(text);
    if (!/^\d+$/.test(text) || value < min || value > max) usageError(`--${option} must be an integer from ${min} to ${max}, not ${JSON.stringify(text)}`);
    return value;
  };
  const listen = (options: ListenOptions & { host: string; port: number }): Listener => {
    try {
      return Listener.listen(options);
    } catch (err) {
      // The library reports a malformed address as a Node-style argument error.
      if ((err as { code?: string }).code === 'ERR_INVALID_ARG_VALUE') usageError(`--host must be an IP address: ${(err as Error).message}`);
      process.stderr.write(`${name}: cannot listen on ${options.host} port ${options.port}: ${(err as Error).message}
`);
      process.exit(1);
    }
  };
  return { values, usageError, integer, listen };
}

/** The options every example server takes. */
const SERVER_OPTIONS = {
  host: { type: 'string', default: '127.0.0.1' },
  port: { type: 'string', default: '0' },
  backend: { type: 'string', default: 'epoll' },
  'ring-send': { type: 'boolean', default: false },
  verbose: { type: 'boolean', default: false },
} as const;

/** What `--backend` may name for a server on a Reactor. */
export type ServerBackend = NonNullable<ReactorOptions['backend']>;

/** What an example server gets from its command line. */
export interface ServerCommandLine<O extends Options> extends CommandLine<typeof SERVER_OPTIONS & O> {
  host: string;
  port: number;
  /** `--backend`: the Reactor's kernel mechanism (`new Reactor({ backend })`). */
  backend: ServerBackend;
  /** `--ring-send`: io_uring's completion-based send (`new Reactor({ backend, ringSend })`). */
  ringSend: boolean;
  /** Writes a line to stdout with --verbose (stdout otherwise carries only `listening on`). */
  log(line: string): void;
  /** Listens on --host and --port, or exits (see `CommandLine.listen`). */
  listenHere(options?: Omit<ListenOptions, 'host' | 'port' | 'path'>): Listener;
  /**
   * The contract's first stdout line, `listening on HOST:PORT` (IPv6 in brackets), printed after
   * `stop` is installed for SIGINT and SIGTERM: a tool may signal as soon as it reads the line,
   * and an unhandled SIGTERM would kill the server with no graceful shutdown.
   */
  announce(listener: Listener, stop: (signal: NodeJS.Signals) => void): void;
}

/**
 * The command line of an example server: `[--host IP] [--port N] [--verbose]` plus `extra`
 * options, described by `extra.help` lines (`['--idle-timeout MS', 'what it does']`).
 */
export function serverCommandLine<const O extends Options = {}>(
  name: string,
  extra: { options?: O; help?: [string, string][] } = {},
): ServerCommandLine<O> {
  const help: [string, string][] = [
    ['--host IP', 'IP address to listen on (default 127.0.0.1; ::1 or :: for IPv6)'],
    ['--port N', 'TCP port, 0..65535 (default 0: the kernel picks a free one)'],
    ...(extra.help ?? []),
    ['--backend NAME', "epoll (default) or io_uring (falls back to epoll where the kernel refuses it); poll has no fd Node's event loop can watch"],
    ['--ring-send', 'with --backend io_uring: sends through the ring (ringSend; send() answers queued)'],
    ['--verbose', 'also log each connection to stdout'],
  ];
  const synopsis = help.map(([flag]) => `[${flag}]`).join(' ');
  const usage = `usage: ${name} ${synopsis}\n` + help.map(([flag, text]) => `  ${flag.padEnd(20)} ${text}\n`).join('');
  const cli = commandLine(name, usage, { ...SERVER_OPTIONS, ...extra.options } as typeof SERVER_OPTIONS & O);
  const values = cli.values as { host: string; port: string; backend: string; 'ring-send': boolean; verbose: boolean };
  const host = values.host;
  const backend = values.backend;
  if (backend !== 'epoll' && backend !== 'io_uring') {
    cli.usageError(
      backend === 'poll'
        ? "--backend poll cannot drive a server on Node's event loop (poll(2) has no fd to watch): use epoll or io_uring"
        : `--backend must be epoll or io_uring, not ${JSON.stringify(backend)}`,
    );
  }
  if (values['ring-send'] && backend !== 'io_uring') cli.usageError('--ring-send needs --backend io_uring');
  const port = cli.integer('port', values.port, 0, 65535);
  const verbose = values.verbose;
  return {
    ...cli,
    host,
    port,
    backend: backend as ServerBackend,
    ringSend: values['ring-send'],
    log: (line) => {
      if (verbose) process.stdout.write(line + '\n');
    },
    listenHere: (options = {}) => cli.listen({ ...options, host, port }),
    announce: (listener, stop) => {
      process.on('SIGINT', stop);
      process.on('SIGTERM', stop);
      process.stdout.write(`listening on ${formatAddress(listener.address)}\n`);
    },
  };
}
