#!/usr/bin/env node
/**
 * Runs one accepted chat/email operation in a detached process, so that it survives the daemon
 * being restarted (e.g. by the activation it performs):
 *
 *   node dist/src/bus/operation-child.js --operation <id> [--config FILE]
 *
 * Everything it runs comes from the operation record `<state>/operations/<id>.json` that the
 * daemon's command bus wrote after authorising the request: command, validated arguments, the chat
 * actor (recorded as such in the audit log) and whether it was confirmed. Nothing is taken from
 * the environment or the command line apart from the id and the config path, so this entry cannot
 * be used to claim a chat identity: whoever can write that record (root, mode 0600 in a 0700
 * directory) can write the audit log directly anyway. Progress goes to `<id>.progress` (one JSON
 * line per step) and the result to `<id>.result.json` (atomically); the daemon follows both.
 */
import { closeSync, openSync, realpathSync, writeSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { channelTypes } from '../../adapters/registry.js';
import { findCommand } from '../../commands/index.js';
import { HV } from '../cli-name.js';
import { loadConfig } from '../config/load.js';
import { Exit, errorMessage, isHvError } from '../errors.js';
import { assertTrusted } from '../fs/trust.js';
import { DeliveryError } from '../ports/channel.js';
import type { CommandResult } from '../ports/command.js';
import { HV_UMASK } from '../proc.js';
import { createServices } from '../services.js';
import { type OperationRecord, OperationStore, runRecorded } from './operations.js';

export async function runOperation(argv: string[], env: NodeJS.ProcessEnv = process.env): Promise<number> {
  let id: string | undefined;
  let configFlag: string | undefined;
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--operation') id = argv[++i];
    else if (argv[i] === '--config') configFlag = argv[++i];
  }
  if (!id || !/^op-[0-9a-z-]+$/.test(id)) {
    process.stderr.write('usage: operation-child --operation <id> [--config FILE]\n');
    return Exit.usage;
  }
  const { config } = loadConfig(configFlag, env, channelTypes);
  const store = new OperationStore(config.paths.state);
  // The record decides what runs as root: only one that nobody but root (or hv's user) could write.
  try {
    assertTrusted('operation record', store.dir, `${store.dir}/${id}.json`);
  } catch (e) {
    process.stderr.write(`hv: ${errorMessage(e)}\n`);
    return Exit.usage;
  }
  let rec: OperationRecord | null;
  try {
    rec = store.load(id);
  } catch (e) {
    process.stderr.write(`hv: ${errorMessage(e)}\n`);
    return isHvError(e) ? e.exitCode : Exit.failed;
  }
  if (!rec) {
    process.stderr.write(`hv: no operation record ${id} in ${store.dir}\n`);
    return Exit.usage;
  }
  // Never run one operation twice, even if it was started twice.
  try {
    closeSync(openSync(`${store.dir}/${id}.started`, 'wx', 0o600));
  } catch {
    process.stderr.write(`hv: operation ${id} was already started\n`);
    return Exit.usage;
  }
  const log = (level: string, msg: string, fields?: Record<string, unknown>) =>
    writeSync(
      2,
      `${new Date().toISOString()} ${level} ${msg}${fields ? ` ${JSON.stringify(fields)}` : ''}\n`,
    );
  log('info', 'operation started', { operation: id, command: rec.command, pid: process.pid });
  let result: CommandResult;
  const cmd = findCommand(rec.command);
  if (!cmd) {
    result = {
      status: 'error',
      exitCode: Exit.usage,
      message: `unknown command "${rec.command}"`,
      data: {},
    };
  } else {
    // Started by a daemon that runs a chat process: chat platforms' tokens live there, so this
    // (root) process queues those deliveries for the daemon, which hands them over; it loads no
    // chat library.
    const viaDaemon = env.HV_CHAT_DELIVERY === 'daemon';
    const services = createServices(config, {
      channels: channelTypes,
      log,
      notifierFor: (channel) =>
        viaDaemon && channelTypes.get(channel.type)?.placement(channel).notifier === 'chat'
          ? {
              name: channel.name ?? channel.type,
              type: channel.type,
              deferred: true,
              async deliver() {
                throw new DeliveryError(`left for ${HV} daemon's chat process`);
              },
            }
          : undefined,
    });
    result = await runRecorded(cmd, rec, services, (name, detail) => {
      store.appendProgress(id as string, { step: name, detail, at: new Date().toISOString() });
    });
  }
  store.writeResult(id, { ...result, data: { ...result.data, operationId: id } });
  log('info', 'operation finished', { operation: id, status: result.status });
  return result.exitCode;
}

const self = fileURLToPath(import.meta.url);
if (process.argv[1] && realpathSync(process.argv[1]) === self) {
  // The daemon going away (restart, SIGHUP of a session) must not end the operation.
  process.on('SIGHUP', () => {});
  process.umask(HV_UMASK); // not the daemon's or the caller's (see src/cli/main.ts runAs)
  runOperation(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code;
    },
    (e) => {
      process.stderr.write(`hv: ${errorMessage(e)}\n`);
      process.exitCode = 1;
    },
  );
}
