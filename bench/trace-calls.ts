/**
 * `npm run bench:trace -- [tasks]`: the SDK calls of one job, in order,
 * each with the project function that made it. A map for cutting round trips.
 */
import { startTestStack } from '../test/support/harness.ts';
import { apiCall, CallCounter, sideStores, sleep, waitForJobs } from './common.ts';

const TASKS = Number(process.argv[2] ?? 1);
const counter = new CallCounter();
let on = false;
const lines: string[] = [];
let t0 = 0;
counter.hooks.push((service, command, input, _output, end) => {
  if (!on) return;
  t0 ||= end;
  const stack = (new Error().stack ?? '')
    .split('\n')
    .filter((l) => /functions\/|container\//.test(l) && !/aws-clients/.test(l));
  const where = stack
    .slice(0, 3)
    .map((l) =>
      l
        .trim()
        .replace(/^at /, '')
        .replace(/\(?file:\/\/\/[^ ]*?\/(functions|container)\//, '$1/')
        .replace(/\)$/, ''),
    )
    .join(' < ');
  const sk = input?.Key?.SK ?? input?.Item?.SK ?? input?.IndexName ?? '';
  const expr = String(input?.UpdateExpression ?? '').slice(0, 50);
  lines.push(
    `${String(end - t0).padStart(5)} ${service}.${command.replace(/Command$/, '')} ${String(sk).split('#')[0]} ${expr} | ${where}`,
  );
});
const stack = await startTestStack(
  `workers: {max_workers: 2}`,
  {},
  { clientOptions: { instrument: counter.instrument } },
);
try {
  const { jobs } = sideStores(stack);
  const run = async () => {
    const res = await apiCall(stack, 'POST', '/api/v1/orchestrate', {
      request: 'trace',
      tasks: Array.from({ length: TASKS }, (_, k) => ({ prompt: `t ${k}` })),
    });
    const id = res.json.job_id as string;
    await waitForJobs(jobs, [id], 60_000);
    while (stack.launcher.active > 0) await sleep(20);
    await sleep(1500);
  };
  await run();
  on = true;
  await run();
  on = false;
  for (const l of lines) console.log(l);
  console.log(`total ${lines.length}`);
} finally {
  await stack.stop();
}
