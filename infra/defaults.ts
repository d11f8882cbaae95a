/**
 * The stack's shared defaults, in one place: how every Lambda is built and
 * bundled, and the settings every queue and bucket starts from. Constructs
 * add only what is their own (a consumer's timeout, a lifecycle rule).
 *
 * `bench/cold-init.ts` bundles the handlers with `lambdaBuildOptions`, as
 * `lambdaCode` does for `cdk synth`, so the bundles it measures are the ones
 * `cdk deploy` ships.
 */
import { relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { AssetHashType, DockerImage, Duration } from 'aws-cdk-lib';
import { Architecture, Code, Runtime } from 'aws-cdk-lib/aws-lambda';
import { BlockPublicAccess, BucketEncryption, type BucketProps } from 'aws-cdk-lib/aws-s3';
import { QueueEncryption, type QueueProps } from 'aws-cdk-lib/aws-sqs';
import { type BuildOptions, buildSync } from 'esbuild';

/** The repository: the Lambdas' project root and the worker image's build context. */
export const REPO_ROOT = fileURLToPath(new URL('..', import.meta.url));

// --- Lambda -----------------------------------------------------------------

/** Every function of the stack runs on this runtime; the bundles target the same Node.js version. */
export const LAMBDA_RUNTIME = Runtime.NODEJS_24_X;
/** Graviton: cheaper per GB-second than x86 for the same work. */
export const LAMBDA_ARCHITECTURE = Architecture.ARM_64;
export const LAMBDA_MEMORY_MB = 512;
/** Inside API Gateway's 29-second integration timeout; consumers and streams set their own. */
export const LAMBDA_TIMEOUT = Duration.seconds(29);
/** Every function's environment, before what it needs of its own. */
export const LAMBDA_BASE_ENVIRONMENT: Readonly<Record<string, string>> = {
  NODE_OPTIONS: '--enable-source-maps',
  POWERTOOLS_LOG_LEVEL: 'INFO',
};

/** esbuild's target for a Node.js Lambda runtime (`nodejs24.x` → `node24`), as CDK derives it. */
export function esbuildTarget(runtime: Runtime): string {
  const version = /^nodejs(\d+)\.x$/.exec(runtime.name)?.[1];
  if (!version) throw new Error(`not a Node.js Lambda runtime: ${runtime.name}`);
  return `node${version}`;
}

/** Bundled CommonJS dependencies call require(); ESM output needs one. */
const REQUIRE_BANNER =
  "import { createRequire as __cr } from 'node:module'; const require = __cr(import.meta.url);";

const esbuildOptions = {
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: esbuildTarget(LAMBDA_RUNTIME),
  minify: true,
  sourcemap: true,
  sourcesContent: false,
  // The ES module builds of the packages: the AWS SDK's (dist-es) are tree-shaken to the commands used.
  mainFields: ['module', 'main'],
  // The AWS SDK is bundled, not taken from the runtime (CDK's default, `@aws-sdk/*` external), because it
  // starts faster. From node_modules each SDK package is one CommonJS file of every command of its service
  // (client-dynamodb alone takes about as long to load as all of our own code); bundled, only the commands
  // we send remain. It also pins the SDK to our lockfile. Measured on the dispatcher's import (CPU ms, node
  // 20, --enable-source-maps, p50 of 15 fresh processes; the five SDK clients alone from node_modules, the
  // baseline of `npm run bench:cold`: 208): SDK external 147, bundled in one file 94, bundled and split 67.
  // What a function needs only sometimes (SQS, S3, ECS, KMS, Bedrock, Secrets Manager) is imported with
  // `import()` of the re-exports in functions/adapters/sdk/, which esbuild tree-shakes; with the SDK
  // external those re-exports would become static imports, loaded at start.
  external: [],
  // What is imported with `import()` goes to chunks of its own, next to index.mjs, read and compiled on
  // first use: V8 compiles every byte of the module it loads, and one file of everything (what CDK's
  // NodejsFunction builds) made the dispatcher compile its S3, ECS and KMS clients at every cold start.
  // Split, its cold start loads 521 KB instead of 982 KB (index.mjs 332 KB), and imports 30% faster.
  splitting: true,
  entryNames: 'index',
  chunkNames: '[name]-[hash]',
  outExtension: { '.js': '.mjs' },
  banner: { js: REQUIRE_BANNER },
} satisfies BuildOptions;

/** The bundling of every Lambda, in esbuild's own terms, without entry point and output folder. */
export const LAMBDA_ESBUILD_OPTIONS: Readonly<BuildOptions> = esbuildOptions;

/** How one Lambda is bundled: `outDir` receives index.mjs (the handler), its chunks and their source maps. */
export function lambdaBuildOptions(entry: string, outDir: string): BuildOptions {
  return { ...esbuildOptions, entryPoints: [entry], outdir: outDir, logLevel: 'warning' };
}

/**
 * A Lambda's code: its entry point bundled by the locally installed esbuild
 * (never Docker, so `cdk synth` works offline), with `lambdaBuildOptions`.
 * The handler is `index.handler`.
 */
export function lambdaCode(entry: string): Code {
  return Code.fromAsset(REPO_ROOT, {
    assetHashType: AssetHashType.OUTPUT,
    bundling: {
      // Required by CDK, never pulled or run: the local bundling below always succeeds or throws.
      image: DockerImage.fromRegistry('dummy'),
      // CDK caches bundles by these options, leaving `local` out: the entry point must be in them, or
      // every function would get the first one's bundle.
      command: ['esbuild', relative(REPO_ROOT, entry)],
      local: {
        tryBundle(outputDir) {
          buildSync(lambdaBuildOptions(entry, outputDir));
          return true;
        },
      },
    },
  });
}

// --- SQS --------------------------------------------------------------------

/** Every queue: encrypted at rest with SQS-managed keys, TLS-only. */
export const QUEUE_DEFAULTS = {
  encryption: QueueEncryption.SQS_MANAGED,
  enforceSSL: true,
} as const satisfies QueueProps;

/** SQS redelivers a message only after its visibility timeout; AWS advises at least 6x the consumer's timeout. */
export const VISIBILITY_TIMEOUT_FACTOR = 6;

/** The visibility timeout of a queue whose consumer may run `consumerTimeout`. */
export function visibilityTimeoutFor(consumerTimeout: Duration): Duration {
  return Duration.seconds(consumerTimeout.toSeconds() * VISIBILITY_TIMEOUT_FACTOR);
}

/** Work messages: SQS's own default. */
export const WORK_QUEUE_RETENTION = Duration.days(4);
/** Poison messages are kept as long as SQS allows, for inspection (their consumer fails the task at once). */
export const DEAD_LETTER_RETENTION = Duration.days(14);

// --- S3 ---------------------------------------------------------------------

/** Every bucket: no public access, S3-managed encryption, TLS-only. */
export const BUCKET_DEFAULTS = {
  blockPublicAccess: BlockPublicAccess.BLOCK_ALL,
  encryption: BucketEncryption.S3_MANAGED,
  enforceSSL: true,
} as const satisfies BucketProps;

/** Server access logs of the artifacts bucket. */
export const ACCESS_LOG_RETENTION = Duration.days(365);
/** Multipart uploads a worker or caller never completed. */
export const INCOMPLETE_UPLOAD_RETENTION = Duration.days(2);
/** Overwritten or deleted artifacts (the bucket is versioned). */
export const NONCURRENT_VERSION_RETENTION = Duration.days(30);
