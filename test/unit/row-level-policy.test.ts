/**
 * Which 42501 errors blame a row (batch.ts isPolicyRefusal): a row-level security policy refusing
 * a new row, told by the routine PostgreSQL names (ExecWithCheckOptions), whatever the server's
 * language; not a missing privilege, nor a query row security would affect with row_security off.
 * The fields are those PostgreSQL 15 sends (seen with psql's VERBOSITY verbose).
 */
import {describe, expect, it} from 'vitest'
import {isPolicyRefusal, isRowLevelError} from '../../src/runtime/batch.js'

describe('isPolicyRefusal', () => {
  it("takes a policy's WITH CHECK and its USING (ON CONFLICT DO UPDATE), in any language", () => {
    expect(isPolicyRefusal({code: '42501', routine: 'ExecWithCheckOptions', message: 'new row violates row-level security policy for table "t"'})).toBe(true)
    expect(isPolicyRefusal({code: '42501', routine: 'ExecWithCheckOptions', message: 'new row violates row-level security policy (USING expression) for table "t"'})).toBe(true)
    expect(isPolicyRefusal({code: '42501', routine: 'ExecWithCheckOptions', message: 'neue Zeile verletzt Policy für Sicherheit auf Zeilenebene für Tabelle »t«'})).toBe(true)
    // no routine (a proxy that drops it): the English message
    expect(isPolicyRefusal({code: '42501', message: 'new row violates row-level security policy for table "t"'})).toBe(true)
    expect(isRowLevelError({code: '42501', routine: 'ExecWithCheckOptions'})).toBe(true)
  })

  it('leaves the 42501 errors about the role or the table to be retried', () => {
    expect(isPolicyRefusal({code: '42501', routine: 'aclcheck_error', message: 'permission denied for table t'})).toBe(false)
    expect(isPolicyRefusal({code: '42501', routine: 'check_enable_rls', message: 'query would be affected by row-level security policy for table "t"'})).toBe(false)
    expect(isPolicyRefusal({code: '42501', message: 'permission denied for table t'})).toBe(false)
    // the same routine's WITH CHECK OPTION of a view is another SQLSTATE (44000)
    expect(isPolicyRefusal({code: '44000', routine: 'ExecWithCheckOptions', message: 'new row violates check option for view "v"'})).toBe(false)
    expect(isRowLevelError({code: '42501', routine: 'aclcheck_error', message: 'permission denied for table t'})).toBe(false)
  })
})
