import t from 'tap';
import { ResumeGate } from '../../src/sse/resume-gate.js';

t.test('resumes are bounded per user and per replica, and a released slot is free again', async (t) => {
  const gate = new ResumeGate(3, 2);
  const a1 = gate.tryEnter('a');
  const a2 = gate.tryEnter('a');
  t.ok(a1 && a2, 'two of one user');
  t.equal(gate.tryEnter('a'), undefined, 'not a third of the same user');
  const b1 = gate.tryEnter('b');
  t.ok(b1, 'another user while the replica has room');
  t.equal(gate.tryEnter('c'), undefined, "nobody past the replica's bound");
  t.equal(gate.activeResumes, 3);

  a1!.release();
  a1!.release();
  t.equal(gate.activeResumes, 2, 'a slot is released once, however often release is called');
  t.ok(gate.tryEnter('a'), 'the user has a slot again');
  b1!.release();
  t.ok(gate.tryEnter('c'), 'and so has the replica');
});
