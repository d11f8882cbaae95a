/** The one kind of unhandled error the test runs forgive: the emulator closed under a request. */
import { describe, expect, it } from 'vitest';
import { isEmulatorClosedError } from '../support/emulator-closed.ts';

describe('isEmulatorClosedError', () => {
  it("forgives dynalite's database or query iterator closed by an emulator restart", () => {
    expect(isEmulatorClosedError(new Error('Database is closed'))).toBe(true);
    expect(
      isEmulatorClosedError(
        Object.assign(new Error('Iterator is not open: cannot read after close()'), {
          code: 'LEVEL_ITERATOR_NOT_OPEN',
        }),
      ),
    ).toBe(true);
    expect(isEmulatorClosedError({ code: 'LEVEL_DATABASE_NOT_OPEN' })).toBe(true);
  });

  it('fails the run on anything else', () => {
    expect(isEmulatorClosedError(new Error('ECONNRESET'))).toBe(false);
    expect(isEmulatorClosedError(new TypeError("Cannot read properties of undefined (reading 'x')"))).toBe(
      false,
    );
    expect(isEmulatorClosedError(undefined)).toBe(false);
    expect(isEmulatorClosedError({ code: 'LEVEL_NOT_FOUND' })).toBe(false);
  });
});
