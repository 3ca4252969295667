/**
 * The socket file a Unix bind makes: remembered by device and inode when it is made, and removed
 * on close only if the path still names that same file (someone may have removed it and put
 * another file there meanwhile, and that one is not ours). Abstract names and unnamed sockets
 * have no file. node:net removes the file its server bound too; without this a restart fails
 * with EADDRINUSE.
 */
import fs from 'node:fs';
import { resolve as resolvePath } from 'node:path';

/** Which file a path names: device and inode. */
export interface FileIdentity {
  dev: number;
  ino: number;
}

/** The identity of the file at `path`, or null (an abstract name, an unnamed socket, or nothing there). */
export function socketFileOf(path: string): FileIdentity | null {
  if (path === '' || path.startsWith('\0')) return null;
  try {
    const st = fs.lstatSync(path);
    return st.isSocket() ? { dev: st.dev, ino: st.ino } : null;
  } catch {
    return null;
  }
}

/** Removes `path` if it still names the file `made` identifies; never throws. */
export function removeSocketFile(path: string, made: FileIdentity | null): void {
  if (made === null) return;
  const now = socketFileOf(path);
  if (now === null || now.dev !== made.dev || now.ino !== made.ino) return;
  try {
    fs.unlinkSync(path);
  } catch {
    // Gone already, or a directory we may not write: nothing of ours is left to clean.
  }
}

/** The socket file a bind created: its absolute path, and which file it is (so a replacement is never removed). */
export interface BoundFile {
  path: string;
  identity: FileIdentity;
}

/**
 * Identifies the file bind just created at `path` (null for an abstract name or no file). The
 * path is made absolute now, as the kernel resolved it, so that a later `process.chdir()`
 * cannot redirect the removal.
 */
export function boundFile(path: string): BoundFile | null {
  if (path === '' || path.startsWith('\0')) return null;
  const absolute = resolvePath(path);
  const identity = socketFileOf(absolute);
  return identity === null ? null : { path: absolute, identity };
}

/** Removes the file a bind created, if the path still names it; never throws. */
export function removeBoundFile(file: BoundFile | null): void {
  if (file !== null) removeSocketFile(file.path, file.identity);
}
