/**
 * The socket file a Unix bind makes: remembered by device and inode when it is made, and removed
 * on close only if the path still names that same file (someone may have removed it and put
 * another file there meanwhile, and that one is not ours). Abstract names and unnamed sockets
 * have no file. node:net removes the file its server bound too; without this a restart fails
 * with EADDRINUSE.
 */
import fs from 'node:fs';

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
