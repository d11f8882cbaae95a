// The small process that starts local workers for the launcher (process-spawner.ts).
//
// Starting a process forks its parent, and a fork costs time in proportion to
// the parent's memory: 5 ms from a bare node here, 15-25 ms from local mode
// with its emulators (300-400 MB), the whole of it with local mode's one event
// loop stopped. This process stays small, so the fork is cheap and the
// orchestrator never waits on it. Plain JavaScript, so it starts without tsx.
//
// Messages in: {op:'spawn', id, command, args, env, infoFd} and {op:'kill', id, signal}.
// Messages out: {op:'spawned', id, pid}, {op:'info', id, text} (fd 3), and
// {op:'close', id, code, signal, stderr} (the last 4,000 characters of stderr).
//
// Each worker leads its own process group, and SIGKILL goes to the group: a
// worker killed at its deadline takes the `claude` and `git` it started with
// it, where they would otherwise run on, orphaned, beside the attempt's retry.
// SIGTERM goes to the worker alone, which stops its children itself.
import { spawn } from 'node:child_process';

const STDERR_KEPT = 4000;
/**
 * How long after a worker exited its stderr may stay open. A descendant that
 * left the group can hold it for ever; the worker's end is reported anyway.
 */
const STDERR_DRAIN_MS = 2000;
const children = new Map();

function send(message) {
  if (process.connected) process.send(message);
}

function start(m) {
  let child;
  try {
    child = spawn(m.command, m.args, {
      env: m.env,
      stdio: ['ignore', 'ignore', 'pipe', ...(m.infoFd ? ['pipe'] : [])],
      detached: true,
    });
  } catch (err) {
    send({ op: 'close', id: m.id, code: null, signal: null, stderr: err.message });
    return;
  }
  children.set(m.id, child);
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (chunk) => {
    stderr = (stderr + chunk).slice(-STDERR_KEPT);
  });
  const info = child.stdio[3];
  if (info) {
    info.setEncoding('utf8');
    info.on('data', (text) => send({ op: 'info', id: m.id, text }));
    info.on('error', () => {});
  }
  child.on('error', (err) => {
    stderr += `\n${err.message}`;
  });
  let reported = false;
  const report = (code, signal) => {
    if (reported) return;
    reported = true;
    children.delete(m.id);
    send({ op: 'close', id: m.id, code, signal, stderr });
  };
  child.on('exit', (code, signal) => {
    setTimeout(() => report(code, signal), STDERR_DRAIN_MS).unref();
  });
  child.on('close', report);
  send({ op: 'spawned', id: m.id, pid: child.pid });
}

function kill(child, signal) {
  if (signal === 'SIGKILL' && child.pid !== undefined) {
    try {
      process.kill(-child.pid, signal);
      return;
    } catch {
      // The group is gone (or was never made): the process alone, if it is still there.
    }
  }
  child.kill(signal);
}

process.on('message', (m) => {
  if (m.op === 'spawn') start(m);
  else if (m.op === 'kill') {
    const child = children.get(m.id);
    if (child) kill(child, m.signal);
  }
});

// The orchestrator is gone: so is this process. Sandboxed workers go with it
// (bwrap --die-with-parent), as they did when the orchestrator was their parent.
process.on('disconnect', () => process.exit(0));
