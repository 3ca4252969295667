/**
 * watchAbort (lib/core/abort-watch.ts): one 'abort' listener per signal for any number of the
 * library's operations, each told once, in order; a stopped one is not told; the listener leaves
 * with the last watcher.
 */
import assert from 'node:assert/strict';
import { getEventListeners } from 'node:events';
import { describe, it } from 'node:test';
import { watchAbort } from '../lib/core/abort-watch.ts';

describe('watchAbort', () => {
  it('puts one listener on a signal for many watchers and tells each once, in the order they began', () => {
    const controller = new AbortController();
    const told: number[] = [];
    const stops = Array.from({ length: 50 }, (_, i) => watchAbort(controller.signal, () => told.push(i)));
    assert.equal(getEventListeners(controller.signal, 'abort').length, 1);
    stops[3]();
    controller.abort();
    assert.deepEqual(told, Array.from({ length: 50 }, (_, i) => i).filter((i) => i !== 3));
    for (const stop of stops) stop(); // after the abort: harmless
    assert.equal(getEventListeners(controller.signal, 'abort').length, 0);
  });

  it('takes its listener off when the last watcher stops, and puts a new one on for the next', () => {
    const controller = new AbortController();
    const first = watchAbort(controller.signal, () => assert.fail('stopped'));
    const second = watchAbort(controller.signal, () => assert.fail('stopped'));
    first();
    first(); // twice: nothing more
    assert.equal(getEventListeners(controller.signal, 'abort').length, 1);
    second();
    assert.equal(getEventListeners(controller.signal, 'abort').length, 0);
    let told = 0;
    watchAbort(controller.signal, () => told++);
    assert.equal(getEventListeners(controller.signal, 'abort').length, 1);
    controller.abort();
    assert.equal(told, 1);
  });

  it('the same function watching twice is two watchers: stopping one leaves the other', () => {
    const controller = new AbortController();
    let told = 0;
    const onAbort = (): void => void told++;
    const stop = watchAbort(controller.signal, onAbort);
    watchAbort(controller.signal, onAbort);
    stop();
    controller.abort();
    assert.equal(told, 1);
  });

  it('a watcher that stops another during the abort: the other is not told', () => {
    const controller = new AbortController();
    const told: string[] = [];
    let stopLater = (): void => {};
    watchAbort(controller.signal, () => {
      told.push('first');
      stopLater();
    });
    stopLater = watchAbort(controller.signal, () => told.push('second'));
    controller.abort();
    assert.deepEqual(told, ['first']);
  });
});
