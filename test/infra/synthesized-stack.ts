/**
 * Builds the orchestrator stack from config text the way `cdk synth` does
 * (`buildApp` with the feature flags of `cdk.json`), and reads the template it
 * produces, without bundling the Lambdas. Each test file builds each
 * configuration once, in `beforeAll`.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { App, type CfnElement, Stack } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import type { IConstruct } from 'constructs';
import { type OrchestratorConfig, parseConfig } from '../../functions/core/config.ts';
import { buildApp } from '../../infra/app.ts';
import type { OrchestratorStack } from '../../infra/stack.ts';

const CDK_JSON = fileURLToPath(new URL('../../cdk.json', import.meta.url));

export interface SynthesizedStack {
  readonly config: OrchestratorConfig;
  readonly app: App;
  readonly stack: OrchestratorStack;
  readonly template: Template;
  /** The template as plain JSON, for scans across every resource. */
  readonly json: CfnTemplate;
}

export interface CfnResource {
  // biome-ignore lint/suspicious/noExplicitAny: CloudFormation templates are untyped JSON
  [key: string]: any;
  Type: string;
}

export interface CfnTemplate {
  Resources: Record<string, CfnResource>;
  // biome-ignore lint/suspicious/noExplicitAny: CloudFormation templates are untyped JSON
  [key: string]: any;
}

const outdirs: string[] = [];

/** A `beforeAll` that synthesizes: bundling every Lambda takes long on a busy 2-core machine. */
export const SYNTH_TIMEOUT_MS = 240_000;

/**
 * Parses `yamlText` as `config.yaml`, builds the app as `infra/app.ts` does and
 * synthesizes it. The account and region come from the config only, so the
 * template does not depend on the shell running the tests.
 */
export function synthesize(yamlText: string): SynthesizedStack {
  const config = parseConfig(yamlText);
  const context = JSON.parse(readFileSync(CDK_JSON, 'utf8')).context as Record<string, unknown>;
  const outdir = mkdtempSync(join(tmpdir(), 'orchestrator-infra-test-'));
  outdirs.push(outdir);
  const saved = { account: process.env.CDK_DEFAULT_ACCOUNT, region: process.env.CDK_DEFAULT_REGION };
  delete process.env.CDK_DEFAULT_ACCOUNT;
  delete process.env.CDK_DEFAULT_REGION;
  try {
    // No Lambda bundling: the templates do not depend on it (asset hashes aside), and `npm run synth`
    // in the same `npm test` bundles every function for real. It saves most of a synthesis.
    const app0 = new App({ context: { ...context, 'aws:cdk:bundling-stacks': [] }, outdir });
    const { app, stack } = buildApp(config, app0);
    const json = synthesizedTemplate(app, stack);
    return { config, app, stack, template: Template.fromJSON(json), json };
  } finally {
    if (saved.account !== undefined) process.env.CDK_DEFAULT_ACCOUNT = saved.account;
    if (saved.region !== undefined) process.env.CDK_DEFAULT_REGION = saved.region;
  }
}

/**
 * The stack's template. A cdk-nag finding fails `app.synth()` after the
 * template is written; the properties of that template are still worth
 * asserting one by one (cdk-nag.test.ts reports the findings themselves).
 */
function synthesizedTemplate(app: App, stack: Stack): CfnTemplate {
  try {
    return Template.fromStack(stack).toJSON() as CfnTemplate;
  } catch (err) {
    const error = err as Error;
    if (!/ValidationFailed|Validation failed/.test(`${error.name}: ${error.message}`)) throw err;
    return JSON.parse(readFileSync(join(app.outdir, stack.templateFile), 'utf8')) as CfnTemplate;
  }
}

/** Removes the cloud assemblies this file synthesized. */
export function removeSyntheses(): void {
  for (const dir of outdirs.splice(0)) rmSync(dir, { recursive: true, force: true });
}

/** The logical id CloudFormation knows a construct (or its default child) by. */
export function logicalId(construct: IConstruct): string {
  const element = (construct.node.defaultChild ?? construct) as CfnElement;
  return Stack.of(construct).getLogicalId(element);
}

/** Resources of one type, by logical id. */
export function resourcesOfType(json: CfnTemplate, type: string): [string, CfnResource][] {
  return Object.entries(json.Resources).filter(([, r]) => r.Type === type);
}

export interface PolicyStatementJson {
  Effect: string;
  Action: string | string[];
  Resource?: unknown;
  Condition?: unknown;
}

/** `Action` as a list. */
export function actionsOf(statement: PolicyStatementJson): string[] {
  return ([] as string[]).concat(statement.Action);
}

/** The logical id of the role an ARN attribute (`Fn::GetAtt: [role, Arn]`) points at. */
export function roleIdOfArn(arn: unknown): string {
  const getAtt = ((arn ?? {}) as { 'Fn::GetAtt'?: [string, string] })['Fn::GetAtt'];
  if (getAtt?.[1] !== 'Arn') throw new Error(`not a role ARN of this stack: ${JSON.stringify(arn)}`);
  return getAtt[0];
}

/**
 * Every statement that applies to a role: its inline policies, `AWS::IAM::Policy`
 * and `AWS::IAM::ManagedPolicy` resources attached to it, each with where it came from.
 */
export function statementsOfRole(
  json: CfnTemplate,
  roleId: string,
): { source: string; statement: PolicyStatementJson }[] {
  const out: { source: string; statement: PolicyStatementJson }[] = [];
  const role = json.Resources[roleId];
  if (role?.Type !== 'AWS::IAM::Role') throw new Error(`${roleId} is not an AWS::IAM::Role`);
  for (const inline of role.Properties?.Policies ?? []) {
    for (const statement of inline.PolicyDocument.Statement) out.push({ source: roleId, statement });
  }
  for (const type of ['AWS::IAM::Policy', 'AWS::IAM::ManagedPolicy']) {
    for (const [id, policy] of resourcesOfType(json, type)) {
      const roles: unknown[] = policy.Properties?.Roles ?? [];
      if (!roles.some((r) => (r as { Ref?: string }).Ref === roleId)) continue;
      for (const statement of policy.Properties.PolicyDocument.Statement) out.push({ source: id, statement });
    }
  }
  return out;
}
