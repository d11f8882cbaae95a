/**
 * State: the single DynamoDB table (jobs, tasks, key hashes, and workers'
 * events and live logs, which expire) and the artifacts bucket (files, logs,
 * reports under `jobs/`, repository bundles callers upload under `sources/`),
 * with its access-log bucket.
 */
import { Duration, RemovalPolicy } from 'aws-cdk-lib';
import { AttributeType, Billing, TableEncryptionV2, TableV2 } from 'aws-cdk-lib/aws-dynamodb';
import { Bucket, ObjectOwnership } from 'aws-cdk-lib/aws-s3';
import { Construct } from 'constructs';
import {
  LISTING_INDEX,
  LISTING_INDEX_PARTITION_KEY,
  LISTING_INDEX_SORT_KEY,
  PARTITION_KEY,
  SORT_KEY,
  TTL_ATTRIBUTE,
} from '../../functions/adapters/table-schema.ts';
import { JOBS_PREFIX, SOURCES_PREFIX } from '../../functions/core/layout.ts';
import {
  ACCESS_LOG_RETENTION,
  BUCKET_DEFAULTS,
  INCOMPLETE_UPLOAD_RETENTION,
  NONCURRENT_VERSION_RETENTION,
} from '../defaults.ts';

/** Days an uploaded bundle stays under `sources/` (submit copies it under the job at once). */
export const SOURCE_UPLOAD_RETENTION_DAYS = 1;

export interface StateProps {
  /** `RETAIN` keeps data when the stack is deleted. */
  readonly removalPolicy: RemovalPolicy;
  /** Days before a job's artifacts expire; 0 keeps them. */
  readonly artifactRetentionDays: number;
}

export class State extends Construct {
  readonly table: TableV2;
  readonly bucket: Bucket;
  readonly accessLogsBucket: Bucket;

  constructor(scope: Construct, id: string, props: StateProps) {
    super(scope, id);
    const destroy = props.removalPolicy === RemovalPolicy.DESTROY;

    this.table = new TableV2(this, 'Table', {
      partitionKey: { name: PARTITION_KEY, type: AttributeType.STRING },
      sortKey: { name: SORT_KEY, type: AttributeType.STRING },
      billing: Billing.onDemand(),
      encryption: TableEncryptionV2.awsManagedKey(),
      pointInTimeRecoverySpecification: { pointInTimeRecoveryEnabled: true },
      deletionProtection: !destroy,
      removalPolicy: props.removalPolicy,
      // Only clean-up: events and live log pieces carry it, and AWS deletes them some time after it passes
      // (typically within days, not at that second). Nothing reads it or depends on the deletion:
      // an expired event is still a true event, and local mode's emulator has no TTL at all.
      timeToLiveAttribute: TTL_ATTRIBUTE,
      globalSecondaryIndexes: [
        {
          indexName: LISTING_INDEX,
          partitionKey: { name: LISTING_INDEX_PARTITION_KEY, type: AttributeType.STRING },
          sortKey: { name: LISTING_INDEX_SORT_KEY, type: AttributeType.STRING },
        },
      ],
    });

    this.accessLogsBucket = new Bucket(this, 'AccessLogs', {
      ...BUCKET_DEFAULTS,
      objectOwnership: ObjectOwnership.BUCKET_OWNER_PREFERRED,
      removalPolicy: props.removalPolicy,
      autoDeleteObjects: destroy,
      lifecycleRules: [{ expiration: ACCESS_LOG_RETENTION }],
    });

    this.bucket = new Bucket(this, 'Artifacts', {
      ...BUCKET_DEFAULTS,
      versioned: true,
      serverAccessLogsBucket: this.accessLogsBucket,
      serverAccessLogsPrefix: 'artifacts/',
      removalPolicy: props.removalPolicy,
      autoDeleteObjects: destroy,
      lifecycleRules: [
        { abortIncompleteMultipartUploadAfter: INCOMPLETE_UPLOAD_RETENTION },
        { noncurrentVersionExpiration: NONCURRENT_VERSION_RETENTION },
        // Uploaded repository bundles are copied under jobs/ at submit; an unused upload goes after a day.
        {
          prefix: SOURCES_PREFIX,
          expiration: Duration.days(SOURCE_UPLOAD_RETENTION_DAYS),
          noncurrentVersionExpiration: Duration.days(SOURCE_UPLOAD_RETENTION_DAYS),
        },
        ...(props.artifactRetentionDays > 0
          ? [{ prefix: JOBS_PREFIX, expiration: Duration.days(props.artifactRetentionDays) }]
          : []),
      ],
    });
  }
}
