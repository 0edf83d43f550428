import type { ConfirmationPrompt, Reply, ReplyAddress } from '../../src/bus/types.js';
import type { CommandResult } from '../../src/ports/command.js';

/** A Reply that records what a front end would have shown. */
export class RecordingReply implements Reply {
  readonly steps: { step: string; detail?: string }[] = [];
  readonly results: CommandResult[] = [];
  readonly refusals: string[] = [];
  readonly prompts: ConfirmationPrompt[] = [];

  constructor(readonly addr: ReplyAddress = { channel: 'test', data: {} }) {}

  async progress(step: string, detail?: string): Promise<void> {
    this.steps.push({ step, detail });
  }
  async result(result: CommandResult): Promise<void> {
    this.results.push(result);
  }
  async refused(reason: string): Promise<void> {
    this.refusals.push(reason);
  }
  async confirm(prompt: ConfirmationPrompt): Promise<void> {
    this.prompts.push(prompt);
  }
  address(): ReplyAddress {
    return this.addr;
  }
}
