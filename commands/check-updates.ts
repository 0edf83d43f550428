import { basename } from 'node:path';
import { z } from 'zod';
import { HV } from '../src/cli-name.js';
import { type CheckResult, checkUpdates } from '../src/engine/check.js';
import { type LastCheck, lastSuccessOf, readLastCheck } from '../src/engine/last-check.js';
import { Exit, errorMessage, isHvError } from '../src/errors.js';
import type { HvEvent } from '../src/events.js';
import { writeFileAtomic } from '../src/fs/atomic.js';
import { makeEvent } from '../src/notify/events.js';
import { releaseDetailsText, releaseNotice } from '../src/notify/release-notice.js';
import type { PendingNotice } from '../src/ports/channel.js';
import type { Command, CommandResult } from '../src/ports/command.js';
import { removeFiles, writeJsonAtomic } from '../src/state.js';

const short = (rev: string | undefined) => (rev ? rev.slice(0, 12) : '?');

/** The live flake.lock is known not to be what runs. */
const stale = (r: CheckResult) => r.liveLock?.matchesRunning === false;

/** What runs: the running system's lock when known to differ from the live one, else the locked rev. */
function installed(r: CheckResult): { rev: string | undefined; date: string | undefined } {
  const running = stale(r) ? r.liveLock.running : undefined;
  return running ? { rev: running.rev, date: running.date } : { rev: r.current.rev, date: r.current.date };
}

export function updateTitle(r: CheckResult): string {
  const n = releaseNotice(r);
  const release = n ? ` (newer release: ${n.all.join(', ')}; ${n.next})` : '';
  const why = stale(r) ? ' (the live flake.lock is not what runs)' : '';
  return `NixOS update available: ${r.branch ?? r.input} ${r.available.date ?? short(r.available.rev)}${why}${release}`;
}

/**
 * The announced fact: the upstream revision (as before), and, when the live lock is not what runs,
 * which lock against which running system, so that it is not taken for a repeat of another fact.
 */
function updateKey(r: CheckResult): string {
  const parts: string[] = [];
  if (r.upstreamUpdate || !stale(r)) parts.push(`${r.input}@${r.available.rev ?? r.available.lastModified}`);
  if (stale(r))
    parts.push(`live-lock:${r.lockSha256.slice(0, 16)}@${basename(r.liveLock.system ?? '?').slice(0, 32)}`);
  const releases = r.releases.length ? `+${r.releases.map((x) => x.branch).join(',')}` : '';
  return `${parts.join('+')}${releases}`;
}

function detailsText(r: CheckResult): string {
  const now = installed(r);
  const lines = [
    `NixOS update available for ${r.host}`,
    '',
    `Input:      ${r.input} (${r.source})`,
    `Branch:     ${r.branch ?? '(default)'}`,
    `Installed:  ${now.rev ?? '?'} (${now.date ?? 'date unknown'})`,
    `Available:  ${r.available.rev ?? '?'} (${r.available.date ?? 'date unknown'})`,
  ];
  if (r.reason) lines.push(`Why:        ${r.reason}`);
  if (r.liveLock) lines.push(`Live lock:  ${r.liveLock.detail} (source: ${r.liveLock.source})`);
  const n = releaseNotice(r);
  if (n) lines.push(`Newer releases: ${n.all.join(', ')}`);
  lines.push(
    `Checked:    ${r.checkedAt}`,
    '',
    'Next steps:',
    `  ${HV} upgrade-test      build it and activate it without persisting; reverts on failure`,
    `  ${HV} system-upgrade    then apply exactly what was tested`,
    ...(n ? [`  ${n.next}    later, to move to ${n.branch} the same way`] : []),
    '',
  );
  return lines.join('\n');
}

function summary(r: CheckResult): string {
  const lines: string[] = [];
  if (r.pinned)
    lines.push(`${r.input} is pinned to ${short(r.current.rev)} in flake.nix; there is nothing to track.`);
  else if (r.upstreamUpdate)
    lines.push(
      `Update available for ${r.input} (${r.branch ?? 'default branch'}): ${short(r.current.rev)} (${r.current.date ?? '?'}) -> ${short(r.available.rev)} (${r.available.date ?? '?'})`,
    );
  else if (!stale(r))
    lines.push(
      `Up to date: ${r.input} (${r.branch ?? 'default branch'}) at ${short(r.current.rev)} (${r.current.date ?? '?'})`,
    );
  if (stale(r)) lines.push(`Update available: ${r.liveLock.message}`);
  else if (r.liveLock?.matchesRunning === null && r.liveLock.message)
    lines.push(`Note: ${r.liveLock.message}`);
  if (r.upstreamBehind) lines.push(`Note: ${r.upstreamBehind.message}`);
  if (r.status === 'update-available') lines.push(`Next: ${HV} upgrade-test`);
  const n = releaseNotice(r);
  if (n) lines.push(`Newer release available: ${n.all.join(', ')}. To test ${n.branch}: ${n.next}`);
  return lines.join('\n');
}

export const checkUpdatesCommand: Command<Record<string, never>> = {
  name: 'check-updates',
  summary: 'check whether the tracked input has an update or a newer release',
  role: 'viewer',
  exclusive: true,
  args: z.strictObject({}),
  async run({ config, services, progress }): Promise<CommandResult> {
    const { paths, now } = services;
    const log = services.opLog('update-checker');
    log.info('check started');
    progress.step('checking upstream');
    let r: CheckResult;
    try {
      r = await checkUpdates({ config, runner: services.runner, now, log });
    } catch (e) {
      const error = errorMessage(e);
      log.error('check failed', { error });
      let previous: LastCheck | null = null;
      try {
        previous = readLastCheck(paths);
      } catch (e) {
        // This run writes a new record over the damaged one; only the last success time is lost.
        log.warn('previous last check record unreadable; replacing it', { error: errorMessage(e) });
      }
      const lastSuccessAt = lastSuccessOf(previous);
      writeJsonAtomic(paths.lastCheck, { at: now().toISOString(), ok: false, error, lastSuccessAt });
      const hub = await services.hub();
      await hub.publish([
        makeEvent(
          'check.failed',
          {
            host: config.host,
            key: `${now().toISOString().slice(0, 10)}:${error}`,
            title: 'Update check failed',
            data: { error, log: log.file },
            next: `${HV} check-updates`,
          },
          now(),
        ),
      ]);
      return {
        status: 'error',
        exitCode: Exit.failed,
        message: `Update check failed: ${error}\nLog: ${log.file}`,
        data: { error, code: isHvError(e) ? e.code : 'internal', log: log.file },
      };
    }

    const events: HvEvent[] = [];
    let pending: PendingNotice | null = null;
    const release = releaseNotice(r);
    if (r.status === 'update-available') {
      writeFileAtomic(paths.updateText, detailsText(r));
      writeJsonAtomic(paths.updateJson, r);
      pending = {
        host: r.host,
        input: r.input,
        branch: r.branch,
        current: installed(r),
        available: { rev: r.available.rev, date: r.available.date },
        releases: r.releases.map((x) => x.branch),
        next: `${HV} upgrade-test`,
        detailsFile: paths.updateText,
        ...(stale(r) && r.liveLock.message ? { reason: r.liveLock.message } : {}),
        ...(release ? { release: { branch: release.branch, next: release.next } } : {}),
      };
      events.push(
        makeEvent(
          'update.available',
          {
            host: r.host,
            key: updateKey(r),
            title: updateTitle(r),
            data: { ...r, current: installed(r) },
            next: `${HV} upgrade-test`,
            detailsFile: paths.updateText,
          },
          now(),
        ),
      );
    } else if (release) {
      // Only a newer release: the details file and motd name the command; no update is pending.
      writeFileAtomic(paths.updateText, releaseDetailsText(r, release));
      removeFiles(paths.updateJson);
      pending = {
        host: r.host,
        input: r.input,
        branch: r.branch,
        current: { rev: r.current.rev, date: r.current.date },
        available: { rev: r.current.rev, date: r.current.date },
        releases: release.all,
        next: release.next,
        detailsFile: paths.updateText,
        updateAvailable: false,
        release: { branch: release.branch, next: release.next },
      };
    } else {
      removeFiles(paths.updateText, paths.updateJson);
    }
    // One announcement per check: a newer release rides along with a pending update (and is part of
    // its key, so a new release re-announces it); alone, it is its own event.
    if (release && r.status !== 'update-available') {
      const names = release.all.join(', ');
      events.push(
        makeEvent(
          'release.available',
          {
            host: r.host,
            key: names,
            title: `Newer NixOS release available: ${names} (${release.next})`,
            data: { releases: r.releases, tracked: r.branch },
            next: release.next,
            detailsFile: paths.updateText,
          },
          now(),
        ),
      );
    }
    writeJsonAtomic(paths.lastCheck, { at: r.checkedAt, ok: true, result: r });
    const hub = await services.hub();
    await hub.reconcile(pending);
    const reports = await hub.publish(events);
    log.info('check finished', {
      status: r.status,
      notified: reports.filter((x) => x.outcome === 'delivered').length,
    });
    return {
      status: r.status,
      exitCode: r.status === 'update-available' ? Exit.updateAvailable : Exit.ok,
      message: summary(r),
      data: { ...r, notifications: reports },
    };
  },
};
