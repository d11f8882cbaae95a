/**
 * Planning: the prompt and JSON Schema the planner worker hands to
 * `claude --json-schema`, and the check of what comes back.
 */
import * as z from 'zod';
import type { SubtaskSpec } from './model.ts';

/**
 * A subtask's title or prompt: not blank, and within `max` characters as the
 * model writes it (the JSON Schema's `maxLength` counts the same characters);
 * surrounding white space is trimmed after the checks.
 */
function subtaskText(max: number) {
  return z.string().min(1).max(max).regex(/\S/, { error: 'must not be blank' }).trim();
}

/** One subtask, as both the planner and a splitting worker return it. */
const SubtaskSchema = z.strictObject({ title: subtaskText(200), prompt: subtaskText(20_000) });

/** The planner's answer: between 1 and `maxWorkers` subtasks, nothing else. */
function planSchema(maxWorkers: number) {
  return z.strictObject({ subtasks: z.array(SubtaskSchema).min(1).max(maxWorkers) });
}

/**
 * The JSON Schema of a zod schema, for `claude --json-schema`: what the model
 * must write (zod's input side). The CLI checks the schema with Ajv's default
 * (draft-07) class, which throws on zod's 2020-12 `$schema`, so none is given.
 */
function cliJsonSchema(schema: z.ZodType): Record<string, unknown> {
  const { $schema: _draft, ...json } = z.toJSONSchema(schema, { io: 'input', unrepresentable: 'throw' });
  return json;
}

/** One subtask in a JSON Schema answer: what both the planner and a splitting worker return. */
export const SUBTASK_ITEM_SCHEMA: Readonly<Record<string, unknown>> = cliJsonSchema(SubtaskSchema);

/** The JSON Schema of the planner's answer, derived from the schema `parsePlan` checks it with. */
export function plannerSchema(maxWorkers: number): Record<string, unknown> {
  return cliJsonSchema(planSchema(maxWorkers));
}

export function plannerPrompt(request: string, maxWorkers: number, repository = false): string {
  const where = repository
    ? [
        'You are the planner of a team of Claude Code workers that run in parallel, each in its own checkout of the',
        "caller's git repository, the one in the current directory. Read the files you need to plan against the real",
        "layout. Each worker's changes become one commit, and the commits are merged afterwards: give subtasks that",
        'touch different files (or different parts of a file) so they merge cleanly.',
      ]
    : [
        'You are the planner of a team of Claude Code workers that run in parallel, each in its own empty directory.',
      ];
  return [
    ...where,
    `Split the request below into between 1 and ${maxWorkers} independent subtasks that can run at the same time.`,
    'Each subtask prompt must be self-contained: the worker sees only its own prompt, not the request or the other subtasks.',
    'Prefer fewer, larger subtasks when the work is small. Do not change or write any files yourself.',
    '',
    'Request:',
    request,
  ].join('\n');
}

/** Validates the planner's structured output; returns the subtasks or a reason it was refused. */
export function parsePlan(
  structuredOutput: unknown,
  maxWorkers: number,
): { ok: true; subtasks: SubtaskSpec[] } | { ok: false; reason: string } {
  const result = planSchema(maxWorkers).safeParse(structuredOutput);
  if (!result.success) {
    const first = result.error.issues[0];
    const where = [first?.path.join('.'), first?.message].filter(Boolean).join(' ');
    return { ok: false, reason: `planner returned an unusable plan: ${where}`.trim() };
  }
  return { ok: true, subtasks: result.data.subtasks };
}

/** The prompt a worker gives Claude: its subtask, with just enough context to work alone. */
export function workerPrompt(input: {
  request: string;
  title: string;
  prompt: string;
  taskNo: number;
  totalTasks: number;
  /** Offer `orchestrator spawn --wait` (recursion allowed here). */
  canSpawn?: boolean;
  /** The worker runs in a checkout of the caller's repository, and its changes become a commit. */
  repository?: boolean;
}): string {
  const spawn = input.canSpawn
    ? [
        '',
        'If a large, separable part of your work would be better done by other workers in parallel, run',
        '`orchestrator spawn --wait "<self-contained request>"`: it starts a child job under your task and prints',
        "its workers' results as JSON when they finish. The server enforces depth, task and spend limits.",
      ]
    : [];
  return [
    `You are worker ${input.taskNo} of ${input.totalTasks}, working on one part of a larger request.`,
    ...(input.repository
      ? [
          "The current directory is a checkout of the caller's git repository. Change the files your subtask needs;",
          'when you finish, everything you changed (respecting .gitignore) is collected as one commit and merged with',
          "the other workers' commits. Do not commit, push, or switch branches yourself.",
          'Finish with a short summary of what you changed: it becomes the body of your commit message.',
        ]
      : [
          'Work only in the current directory: every file you create there is collected as your result.',
          'Finish with a short summary of what you did and which files you created.',
        ]),
    '',
    `Overall request (for context): ${input.request}`,
    '',
    `Your subtask: ${input.title}`,
    input.prompt,
    ...spawn,
  ].join('\n');
}
