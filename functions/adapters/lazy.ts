/**
 * Clients made on first use. A Lambda's cold start pays for every module it
 * loads; an SDK client that only some invocations need is given to its
 * adapter as a function that makes it, once, and the adapter imports the
 * commands it sends when it first sends one.
 *
 * Those imports name the re-exports in ./sdk/ (one file per SDK package),
 * never the package itself: the Lambdas bundle the SDK (infra/defaults.ts),
 * and esbuild tree-shakes what a static import names but keeps every
 * command of a package given to `import()`. The dynamic import still defers
 * the evaluation of the package's modules to the first use.
 */

/** A client, or a function that makes it; the adapters take either (local mode and tests pass clients). */
export type ClientSource<C> = C | (() => Promise<C>);

/** `make`, called once on first use and its promise shared; a failure is not kept, so the next use tries again. */
export function lazy<T>(make: () => Promise<T>): () => Promise<T> {
  let made: Promise<T> | undefined;
  return () => {
    made ??= make().catch((err: unknown) => {
      made = undefined;
      throw err;
    });
    return made;
  };
}

/** The client of a source, as a function an adapter calls before each use. */
export function clientOf<C extends object>(source: ClientSource<C>): () => Promise<C> {
  if (typeof source === 'function') return lazy(source as () => Promise<C>);
  const client = Promise.resolve(source);
  return () => client;
}
