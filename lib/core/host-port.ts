/**
 * `HOST:PORT` text, in the forms Node and URLs print: `127.0.0.1:80`, `[::1]:80`,
 * `[fe80::1%lo]:80`, `example.com:80`. Parsed once, by hand, so that a command line's
 * `--target` or a config value is checked with errors that name the argument, instead of each
 * program splitting on the last `:` and getting IPv6 wrong.
 *
 * An IPv6 address must be in brackets: `::1:80` could be the address `::1:80` or `::1` port 80,
 * so it is refused, with a hint. The host comes back as `Socket.connect` and `resolve` take it:
 * IPv6 without brackets and normalised as Node prints it (`[::FFFF:102:304]` gives
 * `::ffff:1.2.3.4`), a zone kept (`fe80::1%lo`), a name lowercased.
 */
import { formatIPv6, parse4, parseIPv6 } from './address.ts';
import { checkInteger, invalidType, invalidValue } from './errors.ts';

/** A parsed `HOST:PORT`. */
export interface HostPort {
  /** An IPv4 literal, an IPv6 literal without brackets (maybe with `%zone`), or a host name. */
  host: string;
  port: number;
  /** 4 or 6 for an IP literal, 0 for a host name (resolve it first: `resolve(host)`). */
  family: 0 | 4 | 6;
}

/** A DNS name as URLs allow it in a host: labels of letters, digits, `-` and `_`, joined by dots. */
const HOST_NAME = /^(?=.{1,253}\.?$)[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?(?:\.[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?)*\.?$/i;

/**
 * Parses `HOST:PORT`: `1.2.3.4:80`, `[::1]:80`, `[fe80::1%eth0]:80`, `localhost:80`. The port is
 * required, decimal, 0 to 65535. Bad forms throw a TypeError naming `argName` (default
 * `'hostPort'`) with code `ERR_INVALID_ARG_VALUE`, or `ERR_INVALID_ARG_TYPE` for a non-string.
 */
export function parseHostPort(text: string, argName = 'hostPort'): HostPort {
  if (typeof text !== 'string') throw invalidType(argName, 'of type string', text);
  const bad = (why: string): never => {
    throw invalidValue(argName, `must be HOST:PORT (1.2.3.4:80, [::1]:80, name:80): ${why}`, text);
  };
  let host: string;
  let rest: string;
  if (text.startsWith('[')) {
    const close = text.indexOf(']');
    if (close < 0) bad('an IPv6 address opened with [ is not closed with ]');
    host = text.slice(1, close);
    rest = text.slice(close + 1);
    if (!rest.startsWith(':')) bad(rest === '' ? 'the port is missing' : 'only :PORT may follow ]');
  } else {
    const colon = text.lastIndexOf(':');
    if (colon < 0) bad('the port is missing');
    host = text.slice(0, colon);
    rest = text.slice(colon);
    if (host.includes(':')) bad('an IPv6 address needs brackets: [ADDRESS]:PORT');
  }
  const portText = rest.slice(1);
  if (!/^[0-9]{1,5}$/.test(portText) || Number(portText) > 65535) bad(`the port must be an integer from 0 to 65535, not ${JSON.stringify(portText)}`);
  const port = Number(portText);
  if (text.startsWith('[')) {
    const parsed = parseIPv6(host);
    if (parsed === null) bad(`${JSON.stringify(host)} in brackets is not an IPv6 address`);
    const address = formatIPv6(parsed!.bytes);
    return { host: parsed!.zone === null ? address : `${address}%${parsed!.zone}`, port, family: 6 };
  }
  if (host === '') bad('the host is missing');
  if (parse4(host, 0, host.length, null, 0)) return { host, port, family: 4 };
  // All-numeric last label: meant as an IPv4 address, but not a strict dotted quad (URL would
  // read `1.2.3` as 1.2.0.3 and `010.0.0.1` as octal; Node's isIP refuses both).
  if (/(?:^|\.)[0-9]+\.?$/.test(host) || /^0x/i.test(host)) bad(`${JSON.stringify(host)} is not a valid IPv4 address`);
  if (!HOST_NAME.test(host)) bad(`${JSON.stringify(host)} is not an IP address or a host name`);
  return { host: host.toLowerCase(), port, family: 0 };
}

/**
 * The inverse of `parseHostPort`: `1.2.3.4:80`, `[::1]:80`, `name:80` (IPv6 in brackets, as in a
 * URL's `host`). `host` is printed as given, apart from the brackets.
 */
export function formatHostPort(host: string, port: number): string {
  if (typeof host !== 'string' || host === '') throw invalidType('host', 'a non-empty string', host);
  checkInteger('port', port, 0, 65535);
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}
