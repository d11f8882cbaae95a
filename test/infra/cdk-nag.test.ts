/**
 * cdk-nag's AWS Solutions checks on the stack as `cdk synth` builds it: no
 * error-level finding is left unacknowledged, and every acknowledgement
 * (recorded by `Validations.of(x).acknowledge` as construct metadata) says
 * why and still silences a finding.
 */

import type { CfnResource } from 'aws-cdk-lib';
import { type PolicyValidationPluginReport, Validations } from 'aws-cdk-lib';
import { AwsSolutionsChecks } from 'cdk-nag';
import type { IConstruct } from 'constructs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { removeSyntheses, SYNTH_TIMEOUT_MS, type SynthesizedStack, synthesize } from './synthesized-stack.ts';

const VARIANTS = [
  ['default', ''],
  [
    'bedrock',
    'orchestrator: { model: claude-sonnet-4-5-20250929 }\ndeploy: { anthropic: { mode: bedrock } }',
  ],
  [
    'git token and existing Anthropic secret',
    'deploy: { git: { token_secret_name: claude-fleet/git-token }, anthropic: { secret_name: claude-fleet/anthropic } }',
  ],
  [
    'imported VPC',
    'deploy: { vpc: { vpc_id: vpc-0abc1234, subnet_ids: [subnet-0abc1234, subnet-0def5678] } }',
  ],
] as const;

const MIN_REASON_CHARS = 20;

interface Acknowledgement {
  /** Path of the construct the acknowledgement was made on. */
  path: string;
  /** Rule id as cdk-nag matches it, e.g. `AwsSolutions-IAM5[Resource::*]`. */
  id: string;
  reason: unknown;
}

/** Every `Validations.of(x).acknowledge(...)` under `scope`, read from construct metadata. */
function acknowledgements(scope: IConstruct): Acknowledgement[] {
  return scope.node.findAll().flatMap((construct) =>
    construct.node.metadata
      .filter((entry) => entry.type === Validations.ACKNOWLEDGED_RULES_METADATA_KEY)
      .flatMap((entry) =>
        Object.entries(entry.data as Record<string, unknown>).map(([qualifiedId, reason]) => ({
          path: construct.node.path,
          // aws-cdk-lib stores `Annotation::<id>` for ids without a plugin namespace; cdk-nag strips it.
          id: qualifiedId.replace(/^annotation::/i, ''),
          reason,
        })),
      ),
  );
}

/**
 * Runs the AWS Solutions pack on `scope`, also recording each finding that an
 * acknowledgement silenced (cdk-nag checks them in its private `isAcknowledged`).
 */
function runAwsSolutions(scope: IConstruct): {
  report: PolicyValidationPluginReport;
  silenced: { resourcePath: string; id: string }[];
} {
  const checks = new AwsSolutionsChecks();
  const silenced: { resourcePath: string; id: string }[] = [];
  const pack = checks as unknown as { isAcknowledged(resource: CfnResource, ruleId: string): boolean };
  const isAcknowledged = pack.isAcknowledged.bind(checks);
  pack.isAcknowledged = (resource, ruleId) => {
    const acknowledged = isAcknowledged(resource, ruleId);
    if (acknowledged) silenced.push({ resourcePath: resource.node.path, id: ruleId });
    return acknowledged;
  };
  return { report: checks.validateScope(scope), silenced };
}

function describeFindings(report: PolicyValidationPluginReport, severity: string): string[] {
  return report.violations
    .filter((v) => v.severity === severity)
    .flatMap((v) => v.violatingResources.map((r) => `${v.ruleName} at ${r.constructPath}: ${v.description}`));
}

afterAll(removeSyntheses);

describe.each(VARIANTS)('AWS Solutions checks on the %s stack', (_name, yamlText) => {
  let built: SynthesizedStack;
  let run: ReturnType<typeof runAwsSolutions>;
  beforeAll(() => {
    built = synthesize(yamlText);
    run = runAwsSolutions(built.stack);
  }, SYNTH_TIMEOUT_MS);

  it('leaves no error-level finding unacknowledged', () => {
    const errors = describeFindings(run.report, 'error');
    expect(errors, `unacknowledged cdk-nag errors:\n  ${errors.join('\n  ')}`).toEqual([]);
  });

  it(`gives every acknowledgement a reason of at least ${MIN_REASON_CHARS} characters`, () => {
    const all = acknowledgements(built.stack);
    expect(all.length).toBeGreaterThan(0);
    const unexplained = all.filter(
      (a) => typeof a.reason !== 'string' || a.reason.trim().length < MIN_REASON_CHARS,
    );
    expect(unexplained).toEqual([]);
  });

  it('has no stale AWS Solutions acknowledgement (each one silences a finding)', () => {
    const stale = acknowledgements(built.stack)
      .filter((a) => a.id.startsWith('AwsSolutions-'))
      .filter(
        (a) =>
          !run.silenced.some(
            (s) => s.id === a.id && (s.resourcePath === a.path || s.resourcePath.startsWith(`${a.path}/`)),
          ),
      )
      .map((a) => `${a.id} on ${a.path}`);
    expect(stale, 'acknowledgements that match no finding (a typo, or a finding id that changed)').toEqual(
      [],
    );
  });
});
