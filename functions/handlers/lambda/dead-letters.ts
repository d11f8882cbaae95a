/** Lambda entry point: the dead-letter queue consumer. */
import { createDeadLetterConsumer } from '../dead-letter-consumer.ts';
import { depsFromEnv } from './runtime.ts';

export const handler = createDeadLetterConsumer(depsFromEnv());
