/**
 * Draws bench/RESULTS.md's charts from a bench JSON file:
 *
 *   node --import tsx bench/charts.ts bench/charts/results.json [OUT_DIR]
 *
 * (`npm run bench -- --charts bench/charts` runs the bench and does the same at its end.)
 * Writes OUT_DIR/NAME.svg for every chart the file has data for; OUT_DIR defaults to the JSON
 * file's folder.
 */
import { readFileSync } from 'node:fs';
import { dirname, relative } from 'node:path';
import { writeCharts } from './lib/charts.ts';

const [file, outDir] = process.argv.slice(2);
if (file === undefined || file === '--help' || file === '-h') {
  console.log('usage: node --import tsx bench/charts.ts RESULTS.json [OUT_DIR]');
  process.exit(file === undefined ? 1 : 0);
}
const written = writeCharts(JSON.parse(readFileSync(file, 'utf8')), outDir ?? dirname(file), relative(process.cwd(), file));
for (const path of written) console.log(`wrote ${path}`);
