import { z } from 'zod';

/**
 * Schemas of the records hv persists and later trusts (what gates `system-upgrade`, what the
 * reconciler acts on). Each is checked against its TypeScript type where it is read
 * (`readRecord<T>(file, schema, …)` wants a schema of `Stored<T>`), so the compiler keeps the two in
 * step; the types are not imported here, which would make an import cycle with their modules. Unknown keys are kept (`passthrough`): a newer hv may add fields an older one must carry.
 */
const opt = <T extends z.ZodTypeAny>(t: T) => t.optional();
const str = z.string();
const int = z.number().int();
const optStr = opt(str);
const optInt = opt(int);

const CheckOutcome = z.object({ name: str, ok: z.boolean(), output: str }).passthrough();

const Downgrade = z
  .object({
    fromVersion: optStr,
    toVersion: optStr,
    fromRev: optStr,
    toRev: optStr,
    fromRelease: optStr,
    toRelease: optStr,
    reasons: z.array(str),
  })
  .passthrough();

const Versions = z.array(str);
const PackageChange = z
  .object({ name: str, from: Versions, to: Versions, sizeDelta: z.number() })
  .passthrough();
const ClosureSide = z.object({ path: str, paths: int, size: z.number(), kernel: optStr }).passthrough();

/** A ClosureDiff (closure-diff.ts): what the tested system changes against the running one. */
const ClosureDiffRecord = z
  .object({
    from: ClosureSide,
    to: ClosureSide,
    changed: z.array(PackageChange),
    added: z.array(PackageChange),
    removed: z.array(PackageChange),
    rebuilt: z.array(str),
    kernel: opt(z.object({ from: optStr, to: optStr }).passthrough()),
    highlights: z.array(
      z
        .object({ name: str, kind: z.enum(['changed', 'added', 'removed']), from: Versions, to: Versions })
        .passthrough(),
    ),
  })
  .passthrough();

export const TestResultRecord = z
  .object({
    status: z.enum(['passed', 'failed']),
    host: str,
    startedAt: str,
    finishedAt: str,
    input: str,
    oldRev: optStr,
    oldLastModified: optInt,
    newRev: optStr,
    newLastModified: optInt,
    liveLockSha256: str,
    testedLock: optStr,
    testedLockSha256: optStr,
    stagingInputsHash: str,
    stagingFiles: z.record(str),
    stagingDir: str,
    configuration: optStr,
    toplevel: optStr,
    version: optStr,
    previousSystem: optStr,
    previousGeneration: optInt,
    gcRoot: optStr,
    checks: z.array(CheckOutcome),
    reverted: z.boolean(),
    rebootRequired: z.boolean(),
    rebootParts: z.array(str),
    downgradeAllowed: z.boolean(),
    downgrade: opt(Downgrade),
    failedStep: optStr,
    failureKind: opt(
      z.enum([
        'update',
        'evaluation',
        'build',
        'download',
        'hardware',
        'activation',
        'health',
        'interrupted',
        'not-confirmed',
        'internal',
      ]),
    ),
    reason: optStr,
    error: optStr,
    guidance: optStr,
    log: str,
    invalidated: opt(z.object({ at: str, by: str, reason: str }).passthrough()),
    changes: opt(ClosureDiffRecord),
    changesError: optStr,
    release: opt(
      z
        .object({
          from: str,
          to: str,
          fromRef: str,
          toRef: str,
          flakeNix: str,
          flakeNixSha256: str,
          liveFlakeNixSha256: str,
          line: int,
          value: z.object({ from: str, to: str }).passthrough(),
        })
        .passthrough(),
    ),
  })
  .passthrough();

export const InProgressRecord = z
  .object({
    pid: int,
    bootId: optStr,
    startTime: z.number().optional(),
    startedAt: str,
    by: str,
    toplevel: str,
    previousSystem: optStr,
    previousGeneration: optInt,
    // What the test had recorded so far; recovery completes it, so only its shape is checked here:
    // a marker must never stop a revert because a detail is missing.
    result: z.object({ checks: opt(z.array(CheckOutcome)) }).passthrough(),
  })
  .passthrough();

const Interruption = z
  .object({
    step: str,
    outcome: z.enum(['finished', 'undone', 'nothing-changed']),
    detail: str,
    reconciledAt: str,
    reconciledBy: str,
  })
  .passthrough();

/** A dead-man revert: the activation was not confirmed in time and was undone. */
const NotConfirmed = z.object({ reason: str, revertedAt: str, detail: str, ok: z.boolean() }).passthrough();

export const UpgradeRecordSchema = z
  .object({
    status: z.enum(['activating', 'applied', 'failed']),
    startedAt: str,
    finishedAt: optStr,
    by: str,
    operation: z.enum(['switch', 'boot']),
    previousGeneration: optInt,
    previousSystem: optStr,
    newGeneration: optInt,
    toplevel: str,
    version: optStr,
    input: str,
    oldRev: optStr,
    newRev: optStr,
    testStartedAt: str,
    backupDir: str,
    activationExit: optInt,
    rebootRequired: z.boolean(),
    rebootParts: z.array(str),
    error: optStr,
    rolledBackAt: optStr,
    downgrade: opt(Downgrade),
    downgradeLine: optStr,
    release: opt(z.object({ from: str, to: str, fromRef: str, toRef: str }).passthrough()),
    interrupted: opt(Interruption),
    confirmedBy: optStr,
    notConfirmed: opt(NotConfirmed),
    changes: opt(ClosureDiffRecord),
  })
  .passthrough();

export const RollbackRecordSchema = z
  .object({
    status: z.enum(['rolled-back', 'failed']),
    at: str,
    by: str,
    fromGeneration: optInt,
    generation: int,
    system: str,
    lockRestoredFrom: optStr,
    lockRestored: z.boolean(),
    activationExit: int,
    rebootRequired: z.boolean(),
    rebootParts: z.array(str),
    testInvalidated: z.boolean(),
    error: optStr,
    interrupted: opt(Interruption),
    confirmedBy: optStr,
    notConfirmed: opt(NotConfirmed),
  })
  .passthrough();

const JournalSide = z
  .object({
    generation: optInt,
    system: optStr,
    lockSha256: optStr,
    lockFile: optStr,
    lockSource: optStr,
    flakeNixFile: optStr,
  })
  .passthrough();

export const JournalRecordSchema = z
  .object({
    operation: z.enum(['system-upgrade', 'rollback']),
    pid: int,
    startedAt: str,
    by: str,
    requestId: optStr,
    action: z.enum(['switch', 'boot']),
    step: z.enum([
      'backup',
      'set-profile',
      'install-lock',
      'activate',
      'switch-profile',
      'restore-lock',
      'confirm',
      'revert',
    ]),
    history: z.array(z.object({ step: str, at: str }).passthrough()),
    from: JournalSide,
    to: JournalSide,
    backupDir: optStr,
    notConfirmed: optStr,
  })
  .passthrough();

export const SystemLockRecordSchema = z
  .object({ system: str, lockSha256: str, lock: str, flakeNix: optStr, recordedAt: str })
  .passthrough();
