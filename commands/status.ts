import { accessSync, constants } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { HV } from '../src/cli-name.js';
import type { UpgradeRecord } from '../src/engine/apply.js';
import { changesLine, type WithChanges } from '../src/engine/changes-text.js';
import type { CheckResult } from '../src/engine/check.js';
import { wantsText } from '../src/engine/confirm-text.js';
import { readWindow } from '../src/engine/confirm-window.js';
import { type FlakeLock, lockedInput, readFlakeLock } from '../src/engine/flake-lock.js';
import type { JournalRecord } from '../src/engine/op-journal.js';
import {
  JournalRecordSchema,
  RollbackRecordSchema,
  TestResultRecord,
  UpgradeRecordSchema,
} from '../src/engine/records.js';
import { newerReleaseBranches, releaseOfRef } from '../src/engine/releases.js';
import type { RollbackRecord } from '../src/engine/rollback.js';
import { listGenerations, rebootStatus, systemPath, versionOf } from '../src/engine/system.js';
import { compareWithLive, recordedLock } from '../src/engine/system-locks.js';
import type { TestResult } from '../src/engine/test-result.js';
import { Exit, errorMessage } from '../src/errors.js';
import { deliveryStats } from '../src/notify/outbox.js';
import type { Command, CommandResult } from '../src/ports/command.js';
import { readJson, readRecord } from '../src/state.js';

/** An executable by name on PATH (or an absolute path), without spawning anything. */
function findExecutable(tool: string): string | undefined {
  const dirs = tool.includes('/') ? [''] : (process.env.PATH ?? '').split(':').filter(Boolean);
  for (const d of dirs) {
    const p = d ? join(d, tool) : tool;
    try {
      accessSync(p, constants.X_OK);
      return p;
    } catch {
      // not here
    }
  }
  return undefined;
}

/** `nixos-version --json` when the tool exists (NixOS), else undefined. Fast path: no execa. */
function nixosVersionJson(name: string): Promise<Record<string, string> | undefined> {
  const tool = findExecutable(name);
  if (!tool) return Promise.resolve(undefined);
  // child_process is loaded only when there is something to run (it is costly to load).
  return import('node:child_process').then(
    ({ execFile }) =>
      new Promise((resolve) => {
        execFile(tool, ['--json'], { timeout: 3000 }, (err, stdout) => {
          if (err) return resolve(undefined);
          try {
            resolve(JSON.parse(stdout) as Record<string, string>);
          } catch {
            resolve(undefined);
          }
        });
      }),
  );
}

function upgradeLine(u: UpgradeRecord): string {
  const what =
    u.status === 'applied'
      ? `applied generation ${u.newGeneration ?? '?'} (${u.version ?? u.toplevel})`
      : u.status === 'activating'
        ? `activating generation ${u.newGeneration ?? '?'} (${u.version ?? u.toplevel})`
        : `FAILED${u.newGeneration !== undefined ? ` at generation ${u.newGeneration}` : ''}`;
  const parts = [`${what} ${u.finishedAt ?? u.startedAt} by ${u.by}`];
  if (u.interrupted) parts.push(`interrupted at "${u.interrupted.step}", ${u.interrupted.outcome}`);
  if (u.rolledBackAt) parts.push(`rolled back ${u.rolledBackAt}`);
  if (u.confirmedBy) parts.push(u.confirmedBy);
  if (u.notConfirmed) parts.push(`reverted: ${u.notConfirmed.reason}`);
  return parts.join('; ');
}

function rollbackLine(r: RollbackRecord): string {
  const parts = [
    `${r.status === 'rolled-back' ? 'to' : 'FAILED to'} generation ${r.generation} ${r.at} by ${r.by}`,
  ];
  if (r.interrupted) parts.push(`interrupted at "${r.interrupted.step}", ${r.interrupted.outcome}`);
  if (r.confirmedBy) parts.push(r.confirmedBy);
  if (r.notConfirmed) parts.push(`reverted: ${r.notConfirmed.reason}`);
  return parts.join('; ');
}

/** A record with its closure diff replaced by the one-line summary. */
function shortChanges<T extends { changes?: unknown }>(
  rec: T,
  watch: readonly string[],
): Omit<T, 'changes'> & { changes?: string } {
  const { changes, ...rest } = rec;
  const line = changesLine(rec as WithChanges, watch, Number.POSITIVE_INFINITY);
  return line ? { ...rest, changes: line.replace(/^Changes: /, '') } : rest;
}

interface LastCheck {
  at: string;
  ok: boolean;
  error?: string;
  result?: CheckResult;
}

/** Whether the live flake.lock is what runs, as far as status can know without evaluating anything. */
interface LiveLockStatus {
  matchesRunning: boolean | null;
  source: string;
  detail: string;
}

/**
 * hv's record for the running system when there is one (a cheap comparison), else the last check's
 * answer while neither the live lock nor the running system changed since; else unknown.
 */
function liveLockStatus(
  paths: Parameters<typeof recordedLock>[0],
  input: string,
  live: FlakeLock | undefined,
  running: string | undefined,
  lastCheck: LastCheck | null,
): LiveLockStatus {
  if (!live) return { matchesRunning: null, source: 'unknown', detail: 'the live flake.lock cannot be read' };
  if (!running) return { matchesRunning: null, source: 'unknown', detail: 'no running system' };
  const rec = recordedLock(paths, running);
  if (rec) {
    const c = compareWithLive(rec.lock, "hv's record", live, input);
    if (c.matchesLive !== undefined)
      return {
        matchesRunning: c.matchesLive,
        source: 'hv',
        detail: c.matchesLive
          ? "the same as hv's record for the running system"
          : `differs from hv's record for the running system in ${c.differs.join(', ')}`,
      };
  }
  const prev = lastCheck?.ok ? lastCheck.result?.liveLock : undefined;
  if (prev && lastCheck?.result?.lockSha256 === live.sha256 && prev.system === running)
    return {
      matchesRunning: prev.matchesRunning,
      source: prev.source,
      detail: `${prev.message ?? prev.detail} (check of ${lastCheck.at})`,
    };
  return {
    matchesRunning: null,
    source: 'unknown',
    detail: `not known since the last check (flake.lock or the running system changed); run ${HV} check-updates`,
  };
}

/** Delivery figures, filled in by the notification outbox when present. */
export type DeliveryStats = Record<string, { pending: number; retrying: number; dead: number }>;

export const statusCommand: Command<Record<string, never>> = {
  name: 'status',
  summary: 'what the system runs, pending updates, last test, generations',
  role: 'viewer',
  fastStart: true,
  args: z.strictObject({}),
  async run({ config, services }): Promise<CommandResult> {
    const { paths } = services;
    // Started first so that the child runs while the state files are read.
    const version = nixosVersionJson(config.tools.nixosVersion);
    const current = systemPath(config.paths.currentSystem);
    const booted = systemPath(config.paths.bootedSystem);
    let tracked: Record<string, unknown> = { input: config.flake.input };
    let live: FlakeLock | undefined;
    try {
      live = readFlakeLock(config.flake.dir);
      const node = lockedInput(live, config.flake.input);
      tracked = {
        input: node.name,
        ref: node.original.ref,
        rev: node.locked.rev,
        lastModified: node.locked.lastModified,
      };
    } catch (e) {
      tracked.error = errorMessage(e);
    }
    const lastCheck = readJson<LastCheck>(paths.lastCheck);
    const pending = readJson<CheckResult>(paths.updateJson);
    // Records hv trusts are read through their schemas; a damaged one is named, not hidden.
    const unreadable: string[] = [];
    const record = <T>(read: () => T | null): T | null => {
      try {
        return read();
      } catch (e) {
        unreadable.push(errorMessage(e));
        return null;
      }
    };
    const lastTest = record(() =>
      readRecord<TestResult>(paths.testJson, TestResultRecord, 'the upgrade test result'),
    );
    const lastUpgrade = record(() =>
      readRecord<UpgradeRecord>(paths.lastUpgrade, UpgradeRecordSchema, 'the last upgrade record'),
    );
    const lastRollback = record(() =>
      readRecord<RollbackRecord>(paths.lastRollback, RollbackRecordSchema, 'the last rollback record'),
    );
    const unfinished = record(() =>
      readRecord<JournalRecord>(paths.journal, JournalRecordSchema, 'the operation journal'),
    );
    // An open dead-man window (apply.confirm): the activation is undone unless confirmed in time.
    const window = record(() => readWindow(paths));
    const generations = listGenerations(config.paths.profile);
    const reboot = rebootStatus(current, booted, systemPath(config.paths.profile));
    // Releases newer than what the live lock follows now (a release upgrade since the check moved it).
    const releases = newerReleaseBranches(
      lastCheck?.result?.releases ?? [],
      releaseOfRef(typeof tracked.ref === 'string' ? tracked.ref : undefined),
    ).map((r) => r.branch);
    const liveLock = liveLockStatus(paths, config.flake.input, live, current, lastCheck);
    // What the tested system would change: only while it may still be applied.
    const applicable = lastTest?.status === 'passed' && !lastTest.invalidated ? lastTest : undefined;
    const testChanges = applicable && changesLine(applicable, config.test.watch, Number.POSITIVE_INFINITY);
    const testChangesShort = applicable && changesLine(applicable, config.test.watch, 300);
    const nv = await version;
    const data = {
      host: config.host,
      system: {
        path: current,
        version: nv?.nixosVersion ?? versionOf(current),
        nixpkgsRevision: nv?.nixpkgsRevision,
      },
      tracked,
      liveLock,
      lastCheck: lastCheck
        ? { at: lastCheck.at, ok: lastCheck.ok, error: lastCheck.error, status: lastCheck.result?.status }
        : null,
      pendingUpdate: pending
        ? { rev: pending.available.rev, date: pending.available.date, branch: pending.branch }
        : null,
      newerReleases: releases,
      lastTest: lastTest
        ? {
            status: lastTest.status,
            finishedAt: lastTest.finishedAt,
            toplevel: lastTest.toplevel,
            reason: lastTest.reason,
            invalidated: lastTest.invalidated,
            ...(testChanges ? { changes: testChanges.replace(/^Changes: /, '') } : {}),
          }
        : null,
      // The upgrade's full diff stays in its record (and hv diff); status carries the short form.
      lastUpgrade: lastUpgrade && shortChanges(lastUpgrade, config.test.watch),
      lastRollback,
      unfinishedOperation: unfinished
        ? {
            operation: unfinished.operation,
            step: unfinished.step,
            startedAt: unfinished.startedAt,
            by: unfinished.by,
          }
        : null,
      confirmWindow: window
        ? {
            operation: window.operation,
            activated: window.activated,
            deadline: window.deadline,
            wants: window.wants,
            requester: window.requester,
          }
        : null,
      generations: generations.map((g) => ({ number: g.number, current: g.current, path: g.path })),
      rebootRequired: reboot.required,
      rebootReason: reboot.reason,
      notifications: deliveryStats(paths.notify),
      unreadable,
    };
    const lines = [
      `Host:        ${config.host}`,
      `System:      ${data.system.version ?? 'unknown'}${current ? ` (${current})` : ''}`,
      `Tracking:    ${config.flake.input}${tracked.ref ? ` ${tracked.ref}` : ''} at ${String(tracked.rev ?? '?').slice(0, 12)}`,
      `Last check:  ${lastCheck ? `${lastCheck.at} ${lastCheck.ok ? (lastCheck.result?.status ?? '') : `FAILED: ${lastCheck.error}`}` : 'never'}`,
      `Live lock:   ${liveLock.matchesRunning === true ? 'what runs' : liveLock.matchesRunning === false ? 'NOT what runs' : 'cannot tell'}: ${liveLock.detail}`,
      `Pending:     ${pending ? `${pending.available.rev?.slice(0, 12)} (${pending.available.date ?? '?'}) — run ${HV} upgrade-test` : 'none'}`,
    ];
    if (releases.length)
      lines.push(
        `Newer release: ${releases.join(', ')}${/^nixos-\d\d\.\d\d$/.test(releases[0] ?? '') ? ` — ${HV} upgrade-test --release ${(releases[0] as string).slice(6)}` : ''}`,
      );
    lines.push(
      `Last test:   ${lastTest ? `${String(lastTest.status).toUpperCase()} ${lastTest.finishedAt ?? ''}${lastTest.invalidated ? ` (no longer valid: ${lastTest.invalidated.reason})` : ''}` : 'none'}`,
    );
    if (testChangesShort) lines.push(`  ${testChangesShort}`);
    if (lastUpgrade) lines.push(`Last upgrade: ${upgradeLine(lastUpgrade)}`);
    if (lastRollback) lines.push(`Last rollback: ${rollbackLine(lastRollback)}`);
    if (window)
      lines.push(
        `CONFIRM:     the ${window.operation} of ${window.activated} is undone at ${window.deadline} unless confirmed by ${wantsText(window)}`,
      );
    else if (unfinished)
      lines.push(
        `UNFINISHED:  ${unfinished.operation} started ${unfinished.startedAt} by ${unfinished.by}, stopped at "${unfinished.step}" (another operation is running, or reconciling it failed: see the system-upgrade log)`,
      );
    lines.push(
      `Generations: ${generations.map((g) => (g.current ? `[${g.number}]` : String(g.number))).join(' ') || 'none found'}`,
    );
    if (reboot.required) lines.push(`Reboot required: ${data.rebootReason}`);
    for (const u of unreadable) lines.push(`UNREADABLE:  ${u}`);
    for (const [channel, s] of Object.entries(data.notifications)) {
      const parts = (['pending', 'retrying', 'dead', 'held'] as const)
        .filter((k) => s[k] > 0)
        .map((k) => `${s[k]} ${k === 'held' ? 'held for digest' : k}`);
      if (s.pending + s.retrying + s.dead === 0) continue;
      lines.push(
        `Notify ${channel}: ${parts.join(', ')}${s.lastError ? ` (last error: ${s.lastError})` : ''}${s.dead ? ` — ${HV} notify retry` : ''}`,
      );
    }
    return { status: 'ok', exitCode: Exit.ok, message: lines.join('\n'), data };
  },
};
