/** Messages on the work queue. One queue carries both kinds; the consumer routes by `type`. */
import * as z from 'zod';

export const WorkMessageSchema = z.discriminatedUnion('type', [
  /** Start attempt `attempt` of a task (task 0 is the planner). */
  z.object({
    type: z.literal('run'),
    jobId: z.string().min(1),
    taskNo: z.number().int().min(0),
    attempt: z.number().int().min(1),
    /**
     * Set when the task came back because a running slot was full: which one,
     * and how many times in a row. The next try reads that slot's counter
     * before it claims anything (and, for the deployment, waits longer each time).
     */
    slotWait: z.object({ scope: z.enum(['job', 'deployment']), times: z.number().int().min(1) }).optional(),
  }),
  /** Every task of the job is final: write the reports and the job's status. */
  z.object({ type: z.literal('aggregate'), jobId: z.string().min(1) }),
  /** Cancel a job's whole subtree and stop its workers (the consumer holds the launcher). */
  z.object({ type: z.literal('cancel'), jobId: z.string().min(1) }),
]);

export type WorkMessage = z.infer<typeof WorkMessageSchema>;
export type RunMessage = Extract<WorkMessage, { type: 'run' }>;
