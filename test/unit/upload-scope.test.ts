/**
 * The pure rules behind upload scope: which worker-given names can be keys
 * as they stand, and which stored objects a job's report may link.
 */
import { describe, expect, it } from 'vitest';
import { fileVersion, reportObjects, type StoredObject } from '../../functions/core/report-links.ts';
import type { TreeNode } from '../../functions/core/result-format.ts';
import { unsafeNameReason } from '../../functions/services/worker-access.ts';
import { makeJob, makeResult, makeTask } from '../support/records.ts';

describe('unsafeNameReason', () => {
  it.each([
    'a.txt',
    'notes/a.md',
    'deep/er/path/file.json',
    '.hidden',
    'dir/.config',
    'x..y',
    '..tricky',
    'names with spaces.txt',
    'résumé-ü.md',
  ])('accepts %j as it stands', (name) => {
    expect(unsafeNameReason(name)).toBeUndefined();
  });

  it.each([
    ['', /empty/],
    ['/etc/passwd', /absolute/],
    ['../x', /\.\. segment/],
    ['a/../../b', /\.\. segment/],
    ['..', /\.\. segment/],
    ['..\\..\\x', /backslash/],
    ['a\\b', /backslash/],
    ['a//b', /empty or \. segment/],
    ['./a', /empty or \. segment/],
    ['a/', /empty or \. segment/],
    ['a\nb', /control character/],
    ['a\u0000b', /control character/],
    ['a\u007fb', /control character/],
    ['é'.repeat(451), /900 bytes/],
  ])('refuses %j with the reason', (name, reason) => {
    expect(unsafeNameReason(name)).toMatch(reason);
  });
});

describe('reportObjects', () => {
  const root = 'rootjob';
  const child = 'childjob';
  const P = `jobs/${root}/`;
  const obj = (key: string, size = 4, etag = `etag-${key.length}`): StoredObject => ({
    key: `${P}${key}`,
    size,
    etag,
  });

  const files = {
    rootOne: obj('depth_0/worker_1/a.txt'),
    rootTwo: obj('depth_0/worker_2/secret.txt'),
    childOne: obj('depth_1/worker_1_1/mine.txt'),
    grandchild: obj('depth_2/worker_1_1_1/deep.txt'),
  };
  const tree = (recorded: Partial<Record<keyof typeof files, StoredObject>> = files): TreeNode[] => {
    const result = (o?: StoredObject, withVersion = true) =>
      makeResult(
        o
          ? {
              filesCreated: [o.key.split('/').at(-1) as string],
              ...(withVersion ? { fileVersions: [fileVersion(o)] } : {}),
            }
          : {},
      );
    return [
      {
        job: makeJob({ jobId: root }),
        tasks: [
          makeTask(1, { jobId: root, result: result(recorded.rootOne) }),
          makeTask(2, { jobId: root, result: result(recorded.rootTwo) }),
        ],
      },
      {
        job: makeJob({
          jobId: child,
          rootJobId: root,
          depth: 1,
          path: '1',
          parentJobId: root,
          parentTaskNo: 1,
        }),
        tasks: [
          makeTask(1, {
            jobId: child,
            rootJobId: root,
            depth: 1,
            jobPath: '1',
            result: result(recorded.childOne),
          }),
        ],
      },
      {
        job: makeJob({
          jobId: 'grand',
          rootJobId: root,
          depth: 2,
          path: '1_1',
          parentJobId: child,
          parentTaskNo: 1,
        }),
        tasks: [
          makeTask(1, {
            jobId: 'grand',
            rootJobId: root,
            depth: 2,
            jobPath: '1_1',
            result: result(recorded.grandchild, false),
          }),
        ],
      },
    ];
  };
  const shared = [
    obj('FINAL_RESULT.md'),
    obj('result.json'),
    obj('depth_0/LEVEL_0_REPORT.md'),
    obj('depth_1/LEVEL_1_REPORT.md'),
    obj('logs/depth_0_worker_1.log'),
    obj('logs/depth_0_worker_2.log'),
    obj('logs/depth_1_worker_1_1.log'),
    obj('depth_0/worker_1_recursive/CHILD.json'),
    obj('depth_1/worker_1_1_recursive/CHILD.json'),
    obj('git/depth_1/worker_1_1.bundle'),
    obj('git/depth_0/worker_2.bundle'),
    obj('git/job_1/result.bundle'),
    obj('git/base.bundle'),
  ];
  const all = [...Object.values(files), ...shared, { key: 'jobs/otherroot/depth_0/worker_1/x', size: 1 }];
  const keys = (out: { linked: StoredObject[] }) => out.linked.map((o) => o.key.slice(P.length)).sort();

  it("a child job's report links its own subtree only: no sibling, parent, root or tree-wide file", () => {
    const out = reportObjects(tree().slice(1), all);
    expect(keys(out)).toEqual(
      [
        'depth_1/worker_1_1/mine.txt',
        'depth_2/worker_1_1_1/deep.txt',
        'logs/depth_1_worker_1_1.log',
        'depth_1/worker_1_1_recursive/CHILD.json',
        'git/depth_1/worker_1_1.bundle',
        'git/job_1/result.bundle',
      ].sort(),
    );
    expect(out.withheld).toBe(0);
  });

  it("the root's report links the whole tree, never another root's objects", () => {
    const out = reportObjects(tree(), all);
    expect(keys(out)).toEqual([...Object.values(files), ...shared].map((o) => o.key.slice(P.length)).sort());
  });

  it("withholds a worker's file that its result does not name, or that changed since it was recorded", () => {
    const late = obj('depth_0/worker_1/late.txt');
    const changed = { ...files.rootTwo, etag: 'another-etag' };
    const out = reportObjects(tree(), [files.rootOne, late, changed, files.childOne]);
    expect(keys(out)).toEqual(['depth_0/worker_1/a.txt', 'depth_1/worker_1_1/mine.txt']);
    expect(out.withheld).toBe(2);
  });

  it('a running worker (no result yet) has nothing linked', () => {
    const out = reportObjects(tree({ ...files, rootOne: undefined }), [files.rootOne]);
    expect(out.linked).toEqual([]);
    expect(out.withheld).toBe(1);
  });
});
