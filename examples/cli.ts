/**
 * Command-line plumbing shared by the example programs, so that each example shows the library
 * and not argument parsing: `--help` prints the usage and exits 0; a misused option prints the
 * message and the usage on stderr and exits 2 (the contract their tests check).
 */
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { Listener, type ListenOptions } from '../lib/index.ts';

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
