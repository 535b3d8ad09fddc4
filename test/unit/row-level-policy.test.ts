/**
 * Which 42501 errors blame a row (batch.ts isPolicyRefusal): a row-level security policy refusing
 * a new row, told by the routine PostgreSQL names (ExecWithCheckOptions), whatever the server's
 * language; not a missing privilege, nor a query row security would affect with row_security off.
 * The fields are those PostgreSQL 15 sends (seen with psql's VERBOSITY verbose). And which 54000
 * errors blame a row (isRowTooLarge): a value too large for an index or a page.
 */
import {describe, expect, it} from 'vitest'
import {isPolicyRefusal, isRowLevelError, isRowTooLarge} from '../../src/runtime/batch.js'

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

describe('isRowTooLarge', () => {
  it('blames the row for a value too large for an index or a page (54000 from the routines that measure one row)', () => {
    // as PostgreSQL 15 sent them in stream-index-row-size.test.ts
    expect(isRowTooLarge({code: '54000', routine: '_bt_check_third_page', message: 'index row size 4016 exceeds btree version 4 maximum 2704 for index "t_memo_idx"'})).toBe(true)
    expect(isRowTooLarge({code: '54000', routine: 'index_form_tuple_context', message: 'index row requires 12016 bytes, maximum size is 8191'})).toBe(true)
    expect(isRowTooLarge({code: '54000', routine: 'RelationGetBufferForTuple', message: 'row is too big: size 9032, maximum size 8160'})).toBe(true)
    // whatever the server's language
    expect(isRowTooLarge({code: '54000', routine: '_bt_check_third_page', message: 'Indexzeilengröße 4016 überschreitet Maximum 2704 für btree-Version 4 für Index »t_memo_idx«'})).toBe(true)
    // no routine (a proxy that drops it): the English message
    expect(isRowTooLarge({code: '54000', message: 'index row size 4016 exceeds btree version 4 maximum 2704 for index "t_memo_idx"'})).toBe(true)
    expect(isRowLevelError({code: '54000', routine: 'spgdoinsert'})).toBe(true)
  })

  it('leaves the other 54000 errors, about the statement, to be retried', () => {
    expect(isRowTooLarge({code: '54000', routine: 'CommandCounterIncrement', message: 'cannot have more than 2^32-2 commands in a transaction'})).toBe(false)
    expect(isRowTooLarge({code: '54000', routine: 'ArrayGetNItemsSafe', message: 'array size exceeds the maximum allowed (134217727)'})).toBe(false)
    expect(isRowTooLarge({code: '54000', message: 'array size exceeds the maximum allowed (134217727)'})).toBe(false)
    expect(isRowTooLarge({code: '54001', routine: 'check_stack_depth', message: 'stack depth limit exceeded'})).toBe(false)
    expect(isRowLevelError({code: '54000', routine: 'CommandCounterIncrement'})).toBe(false)
  })
})
