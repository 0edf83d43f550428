#!/usr/bin/env node
/**
 * The chat process (placeholder while the transport lands): connects to the engine socket given by
 * `--socket` and hosts the network-facing adapters. See src/chatd/README.md.
 */
process.stderr.write('hv-chat: not built yet\n');
process.exitCode = 1;
