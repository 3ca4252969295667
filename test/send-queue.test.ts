/**
 * SendQueue's block reuse (`keepBlock`, for io_uring's ringSend, which queues every send): a
 * queue that empties writes its next bytes into the block it had, instead of allocating one per
 * send; a block is reused only once consumed (the kernel has taken its bytes), never after
 * `clear()` (a ring's send may still read a dropped block), and never without `keepBlock` (an
 * idle epoll socket holds no memory).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { SendQueue } from '../lib/stream/send-queue.ts';

const bytes = (n: number, fill: number) => new Uint8Array(n).fill(fill);

describe('SendQueue block reuse (keepBlock)', () => {
  it('with keepBlock, the block of a consumed send holds the next one (small sends and a 64 KiB one)', () => {
    const queue = new SendQueue();
    queue.keepBlock = true;
    for (const size of [64, 64 * 1024]) {
      queue.push(bytes(size, 1));
      const first = queue.head()!.buffer;
      queue.consume(size);
      assert.equal(queue.length, 0);
      queue.push(bytes(size, 2));
      const head = queue.head()!;
      assert.equal(head.buffer, first, `the ${size}-byte send reused its block`);
      assert.deepEqual([...new Set(head)], [2], 'with the new bytes');
      queue.consume(size);
    }
  });

  it('a block is not reused while unconsumed bytes are in it, nor after clear(), nor without keepBlock, nor past 256 KiB', () => {
    const queue = new SendQueue();
    queue.keepBlock = true;
    queue.push(bytes(100, 1));
    const first = queue.head()!.buffer;
    queue.consume(50);
    queue.push(bytes(20, 2)); // appended behind the 50 bytes still queued, in the same block
    assert.equal(queue.head()!.buffer, first);
    assert.equal(queue.length, 70);
    queue.clear();
    queue.push(bytes(10, 3));
    assert.notEqual(queue.head()!.buffer, first, 'a cleared queue starts a new block');
    queue.consume(10);

    const plain = new SendQueue();
    plain.push(bytes(10, 1));
    const plainFirst = plain.head()!.buffer;
    plain.consume(10);
    plain.push(bytes(10, 2));
    assert.notEqual(plain.head()!.buffer, plainFirst, 'without keepBlock nothing is kept');

    const big = new SendQueue();
    big.keepBlock = true;
    big.push(bytes(512 * 1024, 1));
    const bigFirst = big.head()!.buffer;
    big.consume(512 * 1024);
    big.push(bytes(512 * 1024, 2));
    assert.notEqual(big.head()!.buffer, bigFirst, 'a 512 KiB block is not kept');
  });

  it('headBlock answers what head() does, as the block and a range', () => {
    const queue = new SendQueue();
    queue.push(bytes(30, 1));
    queue.consume(10);
    queue.push(bytes(5, 2));
    const range = new Int32Array(2);
    const block = queue.headBlock(range)!;
    const head = queue.head()!;
    assert.equal(block.buffer, head.buffer);
    assert.deepEqual([range[0], range[1]], [head.byteOffset - block.byteOffset, head.byteLength]);
    assert.equal(new SendQueue().headBlock(range), null);
  });
});
