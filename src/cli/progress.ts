import type { Progress } from '../ports/command.js';

/**
 * Progress on stderr: a live line with the step and elapsed time on a terminal, plain step lines
 * otherwise (logs, CI, systemd).
 */
export function terminalProgress(stream: NodeJS.WriteStream = process.stderr): Progress & { done(): void } {
  const start = Date.now();
  const elapsed = () => `${Math.round((Date.now() - start) / 1000)}s`;
  if (!stream.isTTY) {
    return {
      step(name, detail) {
        stream.write(`hv: [${elapsed()}] ${name}${detail ? `: ${detail}` : ''}\n`);
      },
      done() {},
    };
  }
  let current = '';
  let timer: NodeJS.Timeout | undefined;
  const draw = () => stream.write(`\r\x1b[K${current} (${elapsed()})`);
  return {
    step(name, detail) {
      if (current) stream.write(`\r\x1b[K✓ ${current}\n`);
      current = `${name}${detail ? `: ${detail}` : ''}`;
      draw();
      timer ??= setInterval(draw, 1000).unref();
    },
    done() {
      if (timer) clearInterval(timer);
      if (current) stream.write(`\r\x1b[K✓ ${current} (${elapsed()})\n`);
      current = '';
    },
  };
}
