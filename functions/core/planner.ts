/**
 * Planning: the prompt and JSON Schema the planner worker hands to
 * `claude --json-schema`, and the check of what comes back.
 */
import * as z from 'zod';
import type { SubtaskSpec } from './model.ts';

/** One subtask in a JSON Schema answer: what both the planner and a splitting worker return. */
export const SUBTASK_ITEM_SCHEMA: Readonly<Record<string, unknown>> = {
  type: 'object',
  properties: {
    title: { type: 'string', minLength: 1, maxLength: 200 },
    prompt: { type: 'string', minLength: 1, maxLength: 20_000 },
  },
  required: ['title', 'prompt'],
  additionalProperties: false,
};

export function plannerSchema(maxWorkers: number): Record<string, unknown> {
  return {
    type: 'object',
    properties: {
      subtasks: {
        type: 'array',
        minItems: 1,
        maxItems: maxWorkers,
        items: SUBTASK_ITEM_SCHEMA,
      },
    },
    required: ['subtasks'],
    additionalProperties: false,
  };
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
  const schema = z.object({
    subtasks: z
      .array(
        z.object({ title: z.string().trim().min(1).max(200), prompt: z.string().trim().min(1).max(20_000) }),
      )
      .min(1)
      .max(maxWorkers),
  });
  const result = schema.safeParse(structuredOutput);
  if (!result.success) {
    const first = result.error.issues[0];
    return {
      ok: false,
      reason:
        `planner returned an unusable plan: ${first?.path.join('.') ?? ''} ${first?.message ?? ''}`.trim(),
    };
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
