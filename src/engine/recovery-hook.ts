import { existsSync } from 'node:fs';
import { onStartup } from '../execute.js';

// Every command first finishes an upgrade test that was interrupted (SPEC: detected at the next
// start). The check is one stat; the recovery code loads only when a marker exists.
onStartup(async (ctx) => {
  if (!existsSync(ctx.services.paths.testInProgress)) return;
  const { recoverInterruptedTest } = await import('./recovery.js');
  await recoverInterruptedTest(ctx);
});
