/** Summarises a V8 .cpuprofile (from `node --cpu-prof`): self time per function, top first. */
import { readFileSync } from 'node:fs';
import { relative } from 'node:path';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
}
interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
  startTime: number;
  endTime: number;
}

export interface SelfTime {
  name: string;
  where: string;
  ms: number;
  pct: number;
}

export function topSelfTime(file: string, root: string, limit = 20): { total: number; rows: SelfTime[] } {
  const p = JSON.parse(readFileSync(file, 'utf8')) as Profile;
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const self = new Map<string, { name: string; where: string; us: number }>();
  let total = 0;
  for (let i = 0; i < p.samples.length; i++) {
    const node = byId.get(p.samples[i]);
    const dt = p.timeDeltas[i] ?? 0;
    if (!node) continue;
    const f = node.callFrame;
    const url = f.url.replace(/^file:\/\//, '');
    const where = url ? `${url.startsWith('/') ? relative(root, url) : url}:${f.lineNumber + 1}` : '';
    const key = `${f.functionName}@${where}`;
    const e = self.get(key) ?? { name: f.functionName || '(anonymous)', where, us: 0 };
    e.us += dt;
    self.set(key, e);
    total += dt;
  }
  const rows = [...self.values()]
    .sort((a, b) => b.us - a.us)
    .slice(0, limit)
    .map((e) => ({ name: e.name, where: e.where, ms: e.us / 1000, pct: (100 * e.us) / total }));
  return { total: total / 1000, rows };
}
