import { runChatAdapterContract } from '../chat-contract.js';
import { discordHarness } from './harness.js';

runChatAdapterContract('discord', discordHarness);
